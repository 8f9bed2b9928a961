"""DVC stage `merge_masks`: the per-part masks -> one 16-bit PNG of 11 parsing bits per face.

    python -m stages.merge_masks --params params.yaml --raw data/raw --out data/merged [--smoke-test]

Reads the `merge_masks:` section: parts (the channel order), mask_size, workers, on_error.
Output: <out>/{id}.png, <out>/manifest.json, and <out>/skipped.json under on_error: skip (docs/data.md).
--smoke-test: the first 8 faces.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from facesr.config import load_section, require

SECTION = "merge_masks"
SMOKE_FACES = 8


def run(params: dict[str, Any], *, raw: str | Path, out: str | Path, smoke_test: bool = False) -> dict[str, Any]:
    from facesr.data.merge import merge_masks

    require(params, "parts", "mask_size", "workers", "on_error", where=f"params.yaml {SECTION}")
    return merge_masks(raw, out, parts=list(params["parts"]), mask_size=int(params["mask_size"]),
                       workers=int(params["workers"]), on_error=params["on_error"],
                       limit=SMOKE_FACES if smoke_test else None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stages.merge_masks", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (reads its merge_masks: section)")
    parser.add_argument("--raw", required=True, help="download stage output (holds CelebAMask-HQ/)")
    parser.add_argument("--out", required=True, help="output folder for the merged maps")
    parser.add_argument("--smoke-test", action="store_true", help=f"the first {SMOKE_FACES} faces only")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(load_section(args.params, SECTION), raw=args.raw, out=args.out, smoke_test=args.smoke_test)
    except ValueError as exc:
        print(f"merge_masks: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
