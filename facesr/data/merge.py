"""merge_masks: the per-part masks of each face -> one 16-bit PNG of parsing bits (SPEC.md "Parsing maps").

Output (`data/merged/`): `{id}.png`, 16-bit grayscale at the mask size (512), bit c set where channel c
(order of `merge_masks.parts`) is set, i.e. where that part's mask is > 127; `manifest.json` with the
ids, parts and the sha256 of every PNG. Channels are multi-label: overlapping annotations keep both
bits (no argmax). A part file that does not exist is an empty channel (the release writes a file only
for parts present). Only the parts in `parts` are read: the others never reach the parsing maps.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from facesr.data.errors import BadFile, DataError, apply_policy, check_policy
from facesr.data.imageio import ImageProblem, read_mask
from facesr.data.layout import RELEASE_PARTS, scan
from facesr.data.util import ordered_map, read_manifest_file
from facesr.fileio import atomic_dir, sweep_stale

FORMAT = "facesr-merged/1"
SMOKE_IMAGES = 8


def pack_masks(masks: list[np.ndarray | None]) -> np.ndarray:
    """Bool masks (None = absent) -> uint16 bit planes, bit c = mask c."""
    bits = None
    for c, m in enumerate(masks):
        if m is None:
            continue
        plane = m.astype(np.uint16) << np.uint16(c)
        bits = plane if bits is None else bits | plane
    if bits is None:
        raise ValueError("no masks to pack")
    return bits


def unpack_bits(bits: np.ndarray, channels: int) -> np.ndarray:
    """uint16 (H, W) -> uint8 (channels, H, W) of 0/1."""
    shifts = np.arange(channels, dtype=np.uint16)[:, None, None]
    return ((bits[None] >> shifts) & 1).astype(np.uint8)


def encode_png16(bits: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # compress_level 1: the merged maps are mostly zeros, so level 1 is nearly as small and 5x faster.
    Image.fromarray(bits.astype(np.uint16)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def read_png16(path: str | Path) -> np.ndarray:
    with Image.open(path) as im:
        if im.mode not in ("I;16", "I;16B", "I"):
            raise ImageProblem(f"merged map has mode {im.mode}, expected 16-bit")
        im.load()
        return np.asarray(im).astype(np.uint16)


def _merge_one(job: tuple) -> tuple[int, str | None, list[BadFile]]:
    idx, paths, parts, size, out = job
    masks: list[np.ndarray | None] = []
    bad: list[BadFile] = []
    for part in parts:
        p = paths.get(part)
        if p is None:
            masks.append(None)
            continue
        try:
            masks.append(read_mask(p, size))
        except ImageProblem as exc:
            bad.append(BadFile(str(p), str(exc)))
            masks.append(None)
    if bad:
        return idx, None, bad
    if all(m is None for m in masks):
        masks[0] = np.zeros((size, size), dtype=bool)
    data = encode_png16(pack_masks(masks))
    (Path(out) / f"{idx}.png").write_bytes(data)
    return idx, hashlib.sha256(data).hexdigest(), []


def merge_masks(raw: str | Path, out: str | Path, *, parts: list[str], mask_size: int, workers: int,
                on_error: str, limit: int | None = None) -> dict:
    """Merge the part masks of every face under `raw` into `out` (replaced atomically).

    The settings are params.yaml's `merge_masks:` keys, all required (no default here to drift from it).
    """
    check_policy(on_error, "merge_masks.on_error")
    sweep_stale(out)  # the temp/old folders of a killed run
    unknown = [p for p in parts if p not in RELEASE_PARTS]
    if unknown or len(parts) > 16 or len(set(parts)) != len(parts):
        raise DataError(f"merge_masks.parts: need up to 16 distinct release parts, got unknown={unknown}, "
                        f"n={len(parts)}")
    found = scan(raw)
    ids = found.ids[:limit] if limit else found.ids
    jobs = [(i, found.masks[i], list(parts), mask_size, None) for i in ids]
    bad = list(found.bad)
    with atomic_dir(out) as tmp:
        jobs = [(*j[:4], str(tmp)) for j in jobs]
        done: dict[int, str] = {}
        for idx, digest, problems in ordered_map(_merge_one, jobs, workers, desc="merge_masks"):
            bad.extend(problems)
            if digest is not None:
                done[idx] = digest
        apply_policy(bad, on_error, tmp / "skipped.json", stage="merge_masks")
        if not done:
            raise DataError(f"{raw}: no usable faces to merge")
        manifest = {
            "format": FORMAT, "parts": list(parts), "mask_size": mask_size, "ids": list(done),
            "sha256": {f"{i}.png": d for i, d in done.items()}, "skipped": len(bad),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return {"images": len(done), "skipped": len(bad), "out": str(out)}


def read_merged_manifest(merged: str | Path) -> dict:
    return read_manifest_file(Path(merged) / "manifest.json", FORMAT, "merge_masks")
