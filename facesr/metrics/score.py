"""``facesr score``: PSNR/SSIM (both protocols) and LPIPS of a folder of SR images against HR images.

Images are paired by file name stem (``12.png`` with ``12.jpg``). Every problem with the folders
(missing names on either side, size mismatches, unreadable files, empty folders, two files with one
stem) is collected first and reported together in one :class:`ScoreError`; nothing is scored then.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path

from facesr.fileio import atomic_write_text
from facesr.metrics.spec import SCORED_NAMES, fmt

IMAGE_EXTS = {".png", ".jpg", ".jpeg"}
COLUMNS = list(SCORED_NAMES)
MAX_LISTED = 10


class ScoreError(ValueError):
    """The folders cannot be scored; the message lists every problem found."""


def _images(folder: Path, side: str, problems: list[str]) -> dict[str, Path]:
    if not folder.is_dir():
        problems.append(f"--{side} {folder}: not a folder")
        return {}
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTS or not p.is_file():
            continue
        if p.stem in found:
            problems.append(f"--{side} {folder}: {found[p.stem].name} and {p.name} share the name {p.stem!r}")
            continue
        found[p.stem] = p
    if not found:
        problems.append(f"--{side} {folder}: no images ({', '.join(sorted(IMAGE_EXTS))})")
    return found


def _listed(names: list[str]) -> str:
    more = f" ... and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def _sort_key(stem: str):
    return (0, int(stem), stem) if stem.isdigit() else (1, 0, stem)


def load_pairs(sr_dir: str | Path, hr_dir: str | Path):
    """``[(name, sr uint8 HWC, hr uint8 HWC)]`` sorted by name, or ScoreError listing every problem."""
    from facesr.data.imageio import ImageProblem, read_rgb

    sr_dir, hr_dir = Path(sr_dir), Path(hr_dir)
    problems: list[str] = []
    sr, hr = _images(sr_dir, "sr", problems), _images(hr_dir, "hr", problems)
    if sr and hr:
        only_sr = sorted(set(sr) - set(hr), key=_sort_key)
        only_hr = sorted(set(hr) - set(sr), key=_sort_key)
        if only_hr:
            problems.append(f"{len(only_hr)} HR image(s) have no SR image in {sr_dir}: {_listed(only_hr)}")
        if only_sr:
            problems.append(f"{len(only_sr)} SR image(s) have no HR image in {hr_dir}: {_listed(only_sr)}")
    pairs = []
    for name in sorted(set(sr) & set(hr), key=_sort_key):
        arrays = []
        for path in (sr[name], hr[name]):
            try:
                arrays.append(read_rgb(path))
            except ImageProblem as e:
                problems.append(f"{path}: {e}")
        if len(arrays) == 2:
            if arrays[0].shape != arrays[1].shape:
                problems.append(
                    f"{name}: SR {sr[name].name} is {arrays[0].shape[1]}x{arrays[0].shape[0]}, "
                    f"HR {hr[name].name} is {arrays[1].shape[1]}x{arrays[1].shape[0]}"
                )
            else:
                pairs.append((name, arrays[0], arrays[1]))
    if problems:
        raise ScoreError(f"cannot score {sr_dir} against {hr_dir}:\n  - " + "\n  - ".join(problems))
    return pairs


def score_dirs(sr_dir: str | Path, hr_dir: str | Path, *, lpips_net: str = "alex", batch: int = 16,
               device: str = "cpu", progress: bool = True) -> dict:
    """Score every pair; returns ``{"rows": [{"name", metrics...}], "mean": {...}, "n": int, ...}``."""
    import numpy as np
    import torch

    from facesr.data.util import progress as progress_bar
    from facesr.metrics import LPIPS, compute_metrics
    from facesr.metrics.quality import finite_mean

    if batch < 1:
        raise ScoreError(f"--batch must be >= 1, got {batch}")
    pairs = load_pairs(sr_dir, hr_dir)
    lpips_fn = LPIPS(net=lpips_net, device=device, batch_size=batch)
    # Batches need one image size; group pairs by size, keep the rows in name order at the end.
    by_size: dict[tuple, list[int]] = {}
    for i, (_, a, _) in enumerate(pairs):
        by_size.setdefault(a.shape, []).append(i)
    rows: list[dict | None] = [None] * len(pairs)
    with progress_bar(total=len(pairs), desc="score", unit="img", enabled=progress) as bar:
        for idx in by_size.values():
            for start in range(0, len(idx), batch):
                chunk = idx[start : start + batch]

                def stack(k, chunk=chunk):
                    arr = np.stack([pairs[i][k] for i in chunk])
                    return torch.from_numpy(arr).permute(0, 3, 1, 2).to(torch.float32) / 255.0

                scores = compute_metrics(stack(1), stack(2), lpips=lpips_fn)
                for j, i in enumerate(chunk):
                    rows[i] = {"name": pairs[i][0]} | {k: float(scores[k][j]) for k in COLUMNS}
                bar.update(len(chunk))
    mean = {k: finite_mean(r[k] for r in rows) for k in COLUMNS}
    return {"sr_dir": str(sr_dir), "hr_dir": str(hr_dir), "lpips_net": lpips_net, "n": len(rows),
            "mean": mean, "rows": rows}


def format_table(result: dict) -> str:
    width = max([len("mean")] + [len(r["name"]) for r in result["rows"]])
    head = f"{'name':<{width}}  " + "  ".join(f"{c:>8s}" for c in COLUMNS)
    lines = [head, "-" * len(head)]

    def line(name, values):
        return f"{name:<{width}}  " + "  ".join(
            f"{fmt(c, values[c]):>8s}" for c in COLUMNS
        )

    lines += [line(r["name"], r) for r in result["rows"]]
    lines += ["-" * len(head), line("mean", result["mean"]), f"({result['n']} images, LPIPS {result['lpips_net']})"]
    return "\n".join(lines)


def to_csv(result: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["name", *COLUMNS], lineterminator="\n")
    w.writeheader()
    for r in result["rows"]:
        w.writerow({k: repr(v) if isinstance(v, float) else v for k, v in r.items()})
    w.writerow({"name": "mean"} | {k: repr(v) for k, v in result["mean"].items()})
    return buf.getvalue()


def _json_safe(x):
    """NaN/inf (empty region, identical images) become null: strict JSON has no such numbers."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _cmd_score(args: argparse.Namespace) -> int:
    try:
        result = score_dirs(args.sr, args.hr, lpips_net=args.lpips_net, batch=args.batch, device=args.device)
    except ScoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(result))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(_json_safe(result), indent=2, allow_nan=False) + "\n")
    if args.csv:
        atomic_write_text(Path(args.csv), to_csv(result))
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("score", help="PSNR/SSIM (RGB and Y protocols) and LPIPS of SR images vs HR images")
    p.add_argument("--sr", required=True, type=Path, help="folder of SR images")
    p.add_argument("--hr", required=True, type=Path, help="folder of HR images (paired by file name stem)")
    p.add_argument("--json", type=Path, help="write per-image rows and the mean as JSON")
    p.add_argument("--csv", type=Path, help="write per-image rows and a final 'mean' row as CSV")
    p.add_argument("--lpips-net", choices=["alex", "vgg"], default="alex")
    p.add_argument("--batch", type=int, default=16, help="images per batch (default 16)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_score)
