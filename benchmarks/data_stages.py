"""Images/s of merge_masks + downscale on the 750-face mini set, against a serial baseline.

    .venv/bin/python benchmarks/data_stages.py [--mini ../shared/data/celebamask-hq-mini] [--limit N]
        [--out benchmarks/data_stages.json]

Baseline: what the release's own preprocessing (g_mask.py) does, then a plain downscale, in one serial
loop: for each face, every part file is read (as a 3-channel image, like cv2.imread) and its label
assigned one part at a time into a label map, which is saved as a PNG; then the image is resized to
HR/LR and each of the 11 parsing channels is cut from the label map and area-averaged on its own.
(cv2 is not installed here; PIL does the same reads and writes.) On the mini set the part masks are
disjoint, so the baseline's label map and facesr's multi-label bits give the same parsing maps; the
script checks that, so the speed is compared on equal outputs.

Decode floor: the part no implementation can skip (decode the JPEG and the 11 channel masks, resize
to HR and LR), serially, with nothing else; `max_speedup_on_this_machine` = cores x baseline CPU /
floor CPU is the most any implementation could gain on this machine without a faster decoder.

facesr: `merge_masks` + `downscale` as the stages run them (process pool, vectorised bit packing,
bit-field area averaging, sha256 manifests), with workers=2 and workers=1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("FACESR_NO_PROGRESS", "1")

from facesr.config import load_section  # noqa: E402
from facesr.data.downscale import downscale  # noqa: E402
from facesr.data.layout import image_path, mask_path, scan  # noqa: E402
from facesr.data.merge import merge_masks  # noqa: E402

PARTS = ["skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip", "l_ear", "r_ear"]
# g_mask.py's label order (later parts overwrite earlier ones)
G_MASK_ATTS = ["skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r", "nose",
               "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat"]


def baseline(root: Path, ids: list[int], out: Path) -> dict[str, np.ndarray]:
    out.mkdir(parents=True)
    hrs, lrs, parsings = [], [], []
    for idx in ids:
        label = np.zeros((512, 512), dtype=np.uint8)
        for code, att in enumerate(G_MASK_ATTS, 1):
            p = mask_path(root, idx, att)
            if os.path.exists(p):
                im = np.array(Image.open(p).convert("RGB"))[:, :, 0]
                label[im != 0] = code
        Image.fromarray(label).save(out / f"{idx}.png", compress_level=1)
        img = Image.open(image_path(root, idx)).convert("RGB")
        hr = img.resize((128, 128), Image.BICUBIC)
        lr = hr.resize((16, 16), Image.BICUBIC)
        label = np.array(Image.open(out / f"{idx}.png"))
        chans = []
        for part in PARTS:
            ch = Image.fromarray((label == G_MASK_ATTS.index(part) + 1).astype(np.float32))
            chans.append(np.floor(np.asarray(ch.resize((128, 128), Image.BOX)) * 255 + 0.5).astype(np.uint8))
        hrs.append(np.asarray(hr))
        lrs.append(np.asarray(lr))
        parsings.append(np.stack(chans))
    arrays = {"ids": np.array(ids), "hr": np.stack(hrs), "lr": np.stack(lrs), "parsing": np.stack(parsings)}
    for k, a in arrays.items():
        np.save(out / f"{k}.npy", a)
    return arrays


def decode_floor(root: Path, ids: list[int]) -> None:
    """The work no correct implementation can skip, and nothing else: decode the JPEG and the 11
    channel masks (8-bit, PIL), resize the image to HR and LR. No merging, packing or writing."""
    for idx in ids:
        for part in PARTS:
            p = mask_path(root, idx, part)
            if os.path.exists(p):
                np.asarray(Image.open(p))
        hr = Image.open(image_path(root, idx)).convert("RGB").resize((128, 128), Image.BICUBIC)
        hr.resize((16, 16), Image.BICUBIC)


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mini", default=str(REPO.parent / "shared" / "data" / "celebamask-hq-mini"))
    ap.add_argument("--limit", type=int, default=None, help="first N faces only (default: all)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "data_stages.json"))
    args = ap.parse_args(argv)
    found = scan(args.mini)
    root = found.root
    ids = found.ids[: args.limit] if args.limit else found.ids
    # the stages read a whole folder: give them one with exactly these faces, by symlinks (no copy)
    work = Path(tempfile.mkdtemp(prefix="facesr-bench-"))
    try:
        src = work / "raw" / "CelebAMask-HQ"
        (src / "CelebA-HQ-img").mkdir(parents=True)
        for idx in ids:
            (src / "CelebA-HQ-img" / f"{idx}.jpg").symlink_to(image_path(root, idx))
            for part, p in found.masks[idx].items():
                d = mask_path(src, idx, part)
                d.parent.mkdir(parents=True, exist_ok=True)
                d.symlink_to(p)
        results, cpu = {}, {}
        load_before = os.getloadavg()
        t, c = time.perf_counter(), _cpu_s()
        base = baseline(src, ids, work / "baseline")
        results["baseline_serial"], cpu["baseline_serial"] = time.perf_counter() - t, _cpu_s() - c
        t, c = time.perf_counter(), _cpu_s()
        decode_floor(src, ids)
        results["decode_floor_serial"], cpu["decode_floor_serial"] = time.perf_counter() - t, _cpu_s() - c
        for workers in (2, 1):
            t, c = time.perf_counter(), _cpu_s()
            merging = load_section(REPO / "params.yaml", "merge_masks", profile="demo") | {"workers": workers}
            merge_masks(work / "raw", work / f"merged{workers}", **merging | {"parts": PARTS})
            settings = load_section(REPO / "params.yaml", "downscale", profile="demo") | {"workers": workers}
            downscale(work / "raw", work / f"merged{workers}", work / f"prep{workers}", **settings)
            results[f"facesr_workers{workers}"] = time.perf_counter() - t
            cpu[f"facesr_workers{workers}"] = _cpu_s() - c
        load_after = os.getloadavg()
        # same outputs: the packed arrays, concatenated over the splits in id order
        ours = {k: np.concatenate([np.load(work / "prep2" / s / f"{k}.npy") for s in ("train", "val", "test")])
                for k in ("ids", "hr", "lr", "parsing")}
        order = np.argsort(ours["ids"])
        equal = {k: bool(np.array_equal(ours[k][order], base[k])) for k in ("ids", "hr", "lr", "parsing")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = len(ids)
    report = {
        "images": n,
        "seconds": {k: round(v, 2) for k, v in results.items()},
        "images_per_s": {k: round(n / v, 1) for k, v in results.items()},
        "speedup_vs_baseline": {k: round(results["baseline_serial"] / v, 2)
                                for k, v in results.items() if k != "baseline_serial"},
        # CPU time does not depend on what else the machine runs; wall time does (see loadavg)
        "cpu_ms_per_image": {k: round(1000 * v / n, 1) for k, v in cpu.items()},
        "cpu_speedup_vs_baseline": {k: round(cpu["baseline_serial"] / v, 2)
                                    for k, v in cpu.items() if k != "baseline_serial"},
        "outputs_equal_to_baseline": equal,
        # the ceiling: decoding alone (decode_floor_serial) spread perfectly over every core
        "max_speedup_on_this_machine": round(os.cpu_count() * cpu["baseline_serial"] / cpu["decode_floor_serial"], 2),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in load_after]},
        "command": "python benchmarks/data_stages.py" + (f" --limit {args.limit}" if args.limit else ""),
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
