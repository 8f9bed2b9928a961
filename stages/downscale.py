"""DVC stage `downscale`: faces + merged maps -> packed HR 128 / LR 16 / soft parsing 128 arrays, split.

Reads the `downscale:` section: kernel (bicubic_aa | bicubic), hr_size, scale, split (thesis |
official | counts), split_counts (split: counts only), workers, on_error. Output: the facesr-prepared/1 folder of docs/DEVELOPING.md (docs/data.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facesr.config import require
from stages._cli import command

KEYS = ("kernel", "hr_size", "scale", "split", "split_counts", "workers", "on_error")
SMOKE_FACES = 8


def run(params: dict[str, Any], *, raw: str | Path, merged: str | Path, out: str | Path,
        smoke_test: bool = False, source: str = "params.yaml") -> dict[str, Any]:
    """Downscale and split the faces.

    Args:
        raw: download stage output (the images)
        merged: merge_masks stage output
        out: output folder for the packed arrays
        smoke_test: the first 8 faces only (split by the thesis proportions under split: counts)
    """
    from facesr.data.downscale import downscale

    require(params, *KEYS, where=f"{source}: downscale")
    split, counts = params["split"], params["split_counts"]
    if smoke_test and split == "counts":  # 8 faces hold no 600/50/100
        split, counts = "thesis", None
    return downscale(raw, merged, out, kernel=params["kernel"], hr_size=int(params["hr_size"]),
                     scale=int(params["scale"]), split=split, split_counts=counts, workers=int(params["workers"]),
                     on_error=params["on_error"], limit=SMOKE_FACES if smoke_test else None)


main = command(run)
if __name__ == "__main__":
    raise SystemExit(main())
