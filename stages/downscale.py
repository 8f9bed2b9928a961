"""DVC stage `downscale`: faces + merged maps -> packed HR 128 / LR 16 / soft parsing 128 arrays, split.

Reads the `downscale:` section: kernel (bicubic_aa | bicubic), hr_size, scale, split (thesis |
official), workers, on_error. Output: the facesr-prepared/1 folder of docs/DEVELOPING.md (docs/data.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facesr.config import require
from stages._cli import command


def run(params: dict[str, Any], *, raw: str | Path, merged: str | Path, out: str | Path,
        smoke_test: bool = False, source: str = "params.yaml") -> dict[str, Any]:
    """Downscale and split the faces.

    Args:
        raw: download stage output (the images)
        merged: merge_masks stage output
        out: output folder for the packed arrays
        smoke_test: the first 8 faces only
    """
    from facesr.data.downscale import downscale

    require(params, "kernel", "hr_size", "scale", "split", "workers", "on_error", where=f"{source}: downscale")
    return downscale(raw, merged, out, kernel=params["kernel"], hr_size=int(params["hr_size"]),
                     scale=int(params["scale"]), split=params["split"], workers=int(params["workers"]),
                     on_error=params["on_error"], limit=8 if smoke_test else None)


main = command(run)
if __name__ == "__main__":
    raise SystemExit(main())
