"""downscale: faces + merged parsing bits -> the packed HR/LR/parsing arrays (SPEC.md "Downscaling", "Split").

HR = the image resized to `hr_size` with `kernel`; LR = HR resized by 1/`scale` the same way; parsing
= the merged bit planes averaged over `mask_size/hr_size` square blocks (area averaging: a pixel's value
is the fraction of its block the part covers), stored as round(p*255). Kernels: `bicubic_aa` = PIL
`Image.BICUBIC` (Pillow widens the kernel when shrinking, i.e. antialiased); `bicubic` = the plain
4-tap bicubic without antialiasing (torch `interpolate(..., antialias=False)`, a=-0.75), kept for the
kernel ablation of SPEC.md.

Split (deterministic from the ids alone):
- `thesis`: ids sorted ascending, the first N - 2k train, the next k val, the last k test, with
  k = round(N/30) (28000/1000/1000 for the release's 30000), at least 1 when N >= 3.
- `counts`: `split_counts` {train, val, test}: ids sorted ascending, the first `train` train, the
  last `test` test and the `val` before them val (600/50/100 of the 750 mini faces holds out 100
  test faces); faces between train and val, if the counts leave some, are not used. The test set
  stays the same when only `train` changes.
- `official`: CelebA's own partition through `CelebA-HQ-to-CelebA-mapping.txt` (columns idx, orig_idx,
  orig_file): orig_idx < 162770 train, < 182637 val, else test (list_eval_partition.txt's boundaries;
  gives 24183/2993/2824 on the release). Needs the mapping file in the raw folder.

A split that leaves train, val or test empty (too few faces, or faces skipped under on_error: skip)
is an error naming the counts: a model selected on no val faces or scored on no test faces is not
a result.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from facesr.data.errors import BadFile, DataError, apply_policy, check_policy
from facesr.data.imageio import ImageProblem, read_rgb
from facesr.data.layout import MAPPING, find_root, image_path
from facesr.data.merge import read_merged_manifest, read_png16, unpack_bits
from facesr.data.packed import FORMAT, SPLITS
from facesr.data.util import ordered_map
from facesr.fileio import atomic_dir, sha256_file, sweep_stale

KERNELS = ("bicubic_aa", "bicubic")
SPLIT_METHODS = ("thesis", "official", "counts")
CELEBA_TRAIN_END = 162770
CELEBA_VAL_END = 182637
SMOKE_IMAGES = 8


def resize_rgb(img: np.ndarray, size: int, kernel: str) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3)."""
    if kernel == "bicubic_aa":
        return np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))
    if kernel == "bicubic":
        import torch
        import torch.nn.functional as F

        # astype copies: decoded images are read-only arrays, which torch.from_numpy warns about
        x = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
        y = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=False)
        return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    raise DataError(f"downscale.kernel: {kernel!r} is not one of {', '.join(KERNELS)}")


def area_downsample(planes: np.ndarray, size: int) -> np.ndarray:
    """uint8 0/1 (C, S, S) -> uint8 (C, size, size) = round(255 * fraction of each block set)."""
    c, s, _ = planes.shape
    f = s // size
    counts = planes.reshape(c, size, f, size, f).sum(axis=(2, 4), dtype=np.uint32)
    n = f * f
    return ((counts * 510 + n) // (2 * n)).astype(np.uint8)  # round half up of 255*counts/n, in integers


_SPREAD_CACHE: dict[int, np.ndarray] = {}


def _spread_table(width: int) -> np.ndarray:
    """uint16 bit pattern -> uint64 with bit c moved to bit width*c (a field per channel)."""
    if width not in _SPREAD_CACHE:
        v = np.arange(1 << 16, dtype=np.uint64)
        t = np.zeros(1 << 16, dtype=np.uint64)
        for c in range(16):
            if width * c < 64:
                t |= ((v >> np.uint64(c)) & np.uint64(1)) << np.uint64(width * c)
        _SPREAD_CACHE[width] = t
    return _SPREAD_CACHE[width]


def area_from_bits(bits: np.ndarray, channels: int, size: int) -> np.ndarray:
    """uint16 bit planes (S, S) -> uint8 (channels, size, size), equal to
    `area_downsample(unpack_bits(bits, channels), size)`.

    Why: unpacking 11 planes at 512x512 and summing each is most of downscale's time. Instead every
    pixel's bits are spread into one uint64 with a field wide enough for a block's count, the blocks
    are summed once as uint64 (all channels at a time, no carries between fields), and the counts
    are read out of the fields: 4-5x faster for 11 channels and 4x4 blocks.
    """
    s = bits.shape[0]
    f = s // size
    n = f * f
    width = int(n).bit_length()
    if channels * width > 64:
        return area_downsample(unpack_bits(bits, channels), size)
    spread = _spread_table(width)[bits]
    sums = spread.reshape(size, f, size, f).sum(axis=(1, 3), dtype=np.uint64)
    shifts = (np.arange(channels, dtype=np.uint64) * np.uint64(width))[:, None, None]
    counts = (sums[None] >> shifts) & np.uint64((1 << width) - 1)
    return ((counts * np.uint64(510) + np.uint64(n)) // np.uint64(2 * n)).astype(np.uint8)


def check_counts(counts: Any, n_faces: int) -> dict[str, int]:
    """`split_counts` as {train, val, test} of ints >= 1 that fit in `n_faces`."""
    if not isinstance(counts, Mapping) or set(counts) != set(SPLITS):
        raise DataError(f"downscale.split_counts: expected a mapping {{train: N, val: N, test: N}} for split: counts, "
                        f"got {counts!r}")
    for name in SPLITS:
        if not isinstance(counts[name], int) or isinstance(counts[name], bool) or counts[name] < 1:
            raise DataError(f"downscale.split_counts.{name}: expected an integer >= 1, got {counts[name]!r}")
    total = sum(counts[k] for k in SPLITS)
    if total > n_faces:
        raise DataError(f"downscale.split_counts: train {counts['train']} + val {counts['val']} + test "
                        f"{counts['test']} = {total} faces, more than the {n_faces} there are")
    return {k: int(counts[k]) for k in SPLITS}


def check_not_empty(sizes: Mapping[str, int], where: str) -> None:
    if empty := [k for k in SPLITS if not sizes.get(k)]:
        raise DataError(f"{where}: the split leaves {' and '.join(empty)} empty ("
                        + ", ".join(f"{k} {sizes.get(k, 0)}" for k in SPLITS)
                        + "): use more faces, or downscale.split: counts with split_counts that fit")


def split_ids(ids: list[int], method: str, mapping: Path | None = None,
              counts: Mapping[str, int] | None = None) -> dict[str, list[int]]:
    ids = sorted(ids)
    if method == "counts":
        c = check_counts(counts, len(ids))
        n = len(ids)
        return {"train": ids[: c["train"]], "val": ids[n - c["test"] - c["val"]: n - c["test"]],
                "test": ids[n - c["test"]:]}
    if counts is not None:
        raise DataError(f"downscale.split_counts: read only by split: counts (split is {method!r}); set it to null")
    if method == "thesis":
        n = len(ids)
        k = max(1, round(n / 30)) if n >= 3 else 0
        return {"train": ids[: n - 2 * k], "val": ids[n - 2 * k: n - k], "test": ids[n - k:]}
    if method == "official":
        if mapping is None or not mapping.is_file():
            raise DataError(f"{mapping}: split 'official' needs the release's {MAPPING} (absent)")
        orig: dict[int, int] = {}
        for ln, line in enumerate(mapping.read_text().splitlines(), 1):
            fields = line.split()
            if not fields or not fields[0].isdigit():
                continue  # header line "idx orig_idx orig_file"
            if len(fields) < 2 or not fields[1].isdigit():
                raise DataError(f"{mapping}:{ln}: expected 'idx orig_idx orig_file', got {line!r}")
            orig[int(fields[0])] = int(fields[1])
        missing = [i for i in ids if i not in orig]
        if missing:
            raise DataError(f"{mapping}: no entry for id(s) {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for i in ids:
            o = orig[i]
            out["train" if o < CELEBA_TRAIN_END else "val" if o < CELEBA_VAL_END else "test"].append(i)
        return out
    raise DataError(f"downscale.split: {method!r} is not one of {', '.join(SPLIT_METHODS)}")


def _prepare_one(job: tuple):
    idx, img_path, merged_path, digest, channels, mask_size, hr_size, scale, kernel = job
    bad: list[BadFile] = []
    try:
        img = read_rgb(img_path)
        if img.shape[0] != img.shape[1]:
            raise ImageProblem(f"image is {img.shape[1]}x{img.shape[0]}, expected square (aligned faces)")
        if img.shape[0] < hr_size:
            raise ImageProblem(f"image is {img.shape[1]}x{img.shape[0]}, smaller than hr_size {hr_size}")
    except ImageProblem as exc:
        bad.append(BadFile(str(img_path), str(exc)))
    try:
        data = Path(merged_path).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise ImageProblem("sha256 differs from the merge_masks manifest (changed since merging)")
        bits = read_png16(io.BytesIO(data))
        if bits.shape != (mask_size, mask_size):
            raise ImageProblem(f"merged map is {bits.shape[1]}x{bits.shape[0]}, expected {mask_size}")
    except (ImageProblem, OSError) as exc:
        bad.append(BadFile(str(merged_path), str(exc)))
    if bad:
        return idx, None, bad
    hr = resize_rgb(img, hr_size, kernel)
    lr = resize_rgb(hr, hr_size // scale, kernel)
    parsing = area_from_bits(bits, channels, hr_size)
    return idx, (hr, lr, parsing), []


def downscale(raw: str | Path, merged: str | Path, out: str | Path, *, kernel: str, hr_size: int, scale: int,
              split: str, split_counts: Mapping[str, int] | None, workers: int, on_error: str,
              limit: int | None = None) -> dict:
    """Pack every merged face of `merged` (images from `raw`) into `out` (replaced atomically).

    The settings are params.yaml's `downscale:` keys, all required (no default here to drift from it).
    """
    check_policy(on_error, "downscale.on_error")
    sweep_stale(out)  # the temp/old folders of a killed run
    if kernel not in KERNELS:
        raise DataError(f"downscale.kernel: {kernel!r} is not one of {', '.join(KERNELS)}")
    if hr_size % scale:
        raise DataError(f"downscale: hr_size {hr_size} is not a multiple of scale {scale}")
    root = find_root(raw)
    m = read_merged_manifest(merged)
    parts, mask_size = m["parts"], int(m["mask_size"])
    if mask_size % hr_size:
        raise DataError(f"downscale: mask size {mask_size} is not a multiple of hr_size {hr_size}")
    ids = m["ids"][:limit] if limit else m["ids"]
    splits = split_ids(ids, split, root / MAPPING, split_counts)
    check_not_empty({k: len(v) for k, v in splits.items()}, f"downscale: {len(ids)} faces, split {split!r}")
    lr_size = hr_size // scale
    shapes = {"ids": (), "hr": (hr_size, hr_size, 3), "lr": (lr_size, lr_size, 3),
              "parsing": (len(parts), hr_size, hr_size)}
    bad: list[BadFile] = []
    with atomic_dir(out) as tmp:
        counts: dict[str, int] = {}
        arrays: dict[str, dict[str, np.ndarray]] = {}
        jobs, owner = [], []
        for name in SPLITS:
            sids = splits[name]
            (tmp / name).mkdir()
            arrays[name] = {k: np.lib.format.open_memmap(tmp / name / f"{k}.npy", mode="w+",
                                                         dtype=np.int64 if k == "ids" else np.uint8,
                                                         shape=(len(sids), *shp))
                            for k, shp in shapes.items()}
            counts[name] = 0
            jobs += [(i, str(image_path(root, i)), str(Path(merged) / f"{i}.png"), m["sha256"][f"{i}.png"],
                      len(parts), mask_size, hr_size, scale, kernel) for i in sids]
            owner += [name] * len(sids)
        # one pool for all splits (a pool start costs more than a few faces); rows routed by split
        results = ordered_map(_prepare_one, jobs, workers, desc="downscale")
        for name, (idx, result, problems) in zip(owner, results):
            bad.extend(problems)
            if result is None:
                continue
            a, row = arrays[name], counts[name]
            a["ids"][row] = idx
            a["hr"][row], a["lr"][row], a["parsing"][row] = result
            counts[name] = row + 1
        for name in SPLITS:
            a = arrays.pop(name)
            for arr in a.values():
                arr.flush()
            if counts[name] < len(splits[name]):  # skipped faces: rewrite the arrays at their true length
                for k in list(a):
                    kept = np.array(a.pop(k)[: counts[name]])
                    np.save(tmp / name / f"{k}.npy", kept)
            del a
        apply_policy(bad, on_error, tmp / "skipped.json", stage="downscale")
        if not sum(counts.values()):
            raise DataError(f"{merged}: no usable faces to downscale")
        check_not_empty(counts, f"downscale: {len(bad)} face(s) skipped (on_error: skip)")
        manifest = {
            "format": FORMAT, "kernel": kernel, "hr_size": hr_size, "scale": scale, "parts": parts,
            "split": split, **({"split_counts": dict(split_counts)} if split == "counts" else {}),
            "splits": counts, "skipped": len(bad),
            "sha256": {f"{s}/{k}.npy": sha256_file(tmp / s / f"{k}.npy") for s in SPLITS for k in shapes},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return {"splits": counts, "skipped": len(bad), "out": str(out)}
