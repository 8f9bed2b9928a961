"""DVC stage `merge_masks`: the per-part masks -> one 16-bit PNG of 11 parsing bits per face.

Reads the `merge_masks:` section: parts (the channel order), mask_size, workers, on_error.
Output: <out>/{id}.png, <out>/manifest.json, and <out>/skipped.json under on_error: skip (docs/data.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facesr.config import require
from stages._cli import command


def run(params: dict[str, Any], *, raw: str | Path, out: str | Path, smoke_test: bool = False,
        source: str = "params.yaml") -> dict[str, Any]:
    """Merge the masks of every face.

    Args:
        raw: download stage output (holds CelebAMask-HQ/)
        out: output folder for the merged maps
        smoke_test: the first 8 faces only
    """
    from facesr.data.merge import merge_masks

    require(params, "parts", "mask_size", "workers", "on_error", where=f"{source}: merge_masks")
    return merge_masks(raw, out, parts=list(params["parts"]), mask_size=int(params["mask_size"]),
                       workers=int(params["workers"]), on_error=params["on_error"], limit=8 if smoke_test else None)


main = command(run)
if __name__ == "__main__":
    raise SystemExit(main())
