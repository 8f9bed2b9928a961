"""DVC stage `downscale`: faces + merged maps -> packed HR 128 / LR 16 / soft parsing 128 arrays, split.

Reads the `downscale:` section: kernel (bicubic_aa | bicubic), hr_size, scale, split (thesis |
official | counts), split_counts (split: counts only), workers, on_error. Output: the facesr-prepared/1 folder of docs/DEVELOPING.md (docs/data.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facesr.config import DownscaleParams, load_downscale
from stages import _cli

SMOKE_FACES = 8


def run(params: DownscaleParams, *, raw: str | Path, merged: str | Path, out: str | Path,
        smoke_test: bool = False) -> dict[str, Any]:
    """Downscale and split the faces of `raw` and `merged` into `out`."""
    from facesr.data.downscale import downscale

    split, counts = params.split, params.split_counts
    if smoke_test and split == "counts":  # 8 faces hold no 600/50/100
        split, counts = "thesis", None
    return downscale(raw, merged, out, kernel=params.kernel, hr_size=params.hr_size, scale=params.scale, split=split,
                     split_counts=counts, workers=params.workers, on_error=params.on_error,
                     limit=SMOKE_FACES if smoke_test else None)


def parser(prog: str = "python -m stages.downscale") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="params file (reads its downscale: section)")
    p.add_argument("--raw", required=True, help="download stage output (the images)")
    p.add_argument("--merged", required=True, help="merge_masks stage output")
    p.add_argument("--out", required=True, help="output folder for the packed arrays")
    p.add_argument("--smoke-test", action="store_true",
                   help="the first 8 faces only (split by the thesis proportions under split: counts)")
    return p


def main(argv: list[str] | None = None, run: Callable[..., dict[str, Any]] = run,
         prog: str = "python -m stages.downscale") -> int:
    """The command line: parse the flags and params, then `run` (this stage's, or its Prefect flow:
    flows.downscale); the exit code of stages._cli.report."""
    args = parser(prog).parse_args(argv)
    return _cli.report(lambda: run(load_downscale(args.params), raw=args.raw, merged=args.merged, out=args.out,
                                   smoke_test=args.smoke_test))


if __name__ == "__main__":
    raise SystemExit(main())
