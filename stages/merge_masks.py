"""DVC stage `merge_masks`: the per-part masks -> one 16-bit PNG of 11 parsing bits per face.

Reads the `merge_masks:` section: parts (the channel order), mask_size, workers, on_error.
Output: <out>/{id}.png, <out>/manifest.json, and <out>/skipped.json under on_error: skip (docs/data.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facesr.config import MergeMasksParams, load_merge_masks
from stages import _cli

SMOKE_FACES = 8


def run(params: MergeMasksParams, *, raw: str | Path, out: str | Path, smoke_test: bool = False) -> dict[str, Any]:
    """Merge the masks of every face under `raw` into `out`."""
    from facesr.data.merge import merge_masks

    return merge_masks(raw, out, parts=list(params.parts), mask_size=params.mask_size, workers=params.workers,
                       on_error=params.on_error, limit=SMOKE_FACES if smoke_test else None)


def parser(prog: str = "python -m stages.merge_masks") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="params file (reads its merge_masks: section)")
    p.add_argument("--raw", required=True, help="download stage output (holds CelebAMask-HQ/)")
    p.add_argument("--out", required=True, help="output folder for the merged maps")
    p.add_argument("--smoke-test", action="store_true", help="the first 8 faces only")
    return p


def main(argv: list[str] | None = None, run: Callable[..., dict[str, Any]] = run,
         prog: str = "python -m stages.merge_masks") -> int:
    """The command line: parse the flags and params, then `run` (this stage's, or its Prefect flow:
    flows.merge_masks); the exit code of stages._cli.report."""
    args = parser(prog).parse_args(argv)
    return _cli.report(lambda: run(load_merge_masks(args.params), raw=args.raw, out=args.out,
                                   smoke_test=args.smoke_test))


if __name__ == "__main__":
    raise SystemExit(main())
