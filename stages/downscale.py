"""DVC stage `downscale`: faces + merged maps -> packed HR 128 / LR 16 / soft parsing 128 arrays, split.

    python -m stages.downscale --params params.yaml --raw data/raw --merged data/merged \
        --out data/prepared [--smoke-test]

Reads the `downscale:` section: kernel (bicubic_aa | bicubic), hr_size, scale, split (thesis |
official), workers, on_error. Output: the facesr-prepared/1 folder of docs/DEVELOPING.md (docs/data.md).
--smoke-test: the first 8 merged faces.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from facesr.config import load_section, require

SECTION = "downscale"
SMOKE_FACES = 8


def run(params: dict[str, Any], *, raw: str | Path, merged: str | Path, out: str | Path,
        smoke_test: bool = False) -> dict[str, Any]:
    from facesr.data.downscale import downscale

    require(params, "kernel", "hr_size", "scale", "split", "workers", "on_error", where=f"params.yaml {SECTION}")
    return downscale(raw, merged, out, kernel=params["kernel"], hr_size=int(params["hr_size"]),
                     scale=int(params["scale"]), split=params["split"], workers=int(params["workers"]),
                     on_error=params["on_error"], limit=SMOKE_FACES if smoke_test else None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stages.downscale", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (reads its downscale: section)")
    parser.add_argument("--raw", required=True, help="download stage output (the images)")
    parser.add_argument("--merged", required=True, help="merge_masks stage output")
    parser.add_argument("--out", required=True, help="output folder for the packed arrays")
    parser.add_argument("--smoke-test", action="store_true", help=f"the first {SMOKE_FACES} faces only")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(load_section(args.params, SECTION), raw=args.raw, merged=args.merged, out=args.out,
                      smoke_test=args.smoke_test)
    except ValueError as exc:
        print(f"downscale: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
