"""DVC stage `download`: the dataset in the official CelebAMask-HQ layout, from any source.

    python -m stages.download --params params.yaml --out data/raw [--cache .download-cache] [--smoke-test]

Reads the `download:` section of params.yaml:
    source           url | archive | folder | synthetic (the offline demo default)
    url, sha256      the release zip and its expected sha256 ("" = trust on first use: the first
                     download's sha256 is printed and recorded in <cache>/<zip>.sha256, and every
                     later run must find the cached zip with it)
    archive, folder  a zip / a folder in the official layout already on disk
    synthetic_count, synthetic_size, seed    the procedural faces
    retries, backoff_s                      URL retries with exponential backoff
    workers          processes for the synthetic generator
    on_error         fail | skip (unsafe zip members: one error listing all, or skipped.json)

Output: <out>/CelebAMask-HQ/ (docs/data.md). The URL's zip (its .sha256, and its .part and
.part.json while incomplete) lives in --cache, default `<out>/../.download-cache`, outside the DVC
out so an interrupted fetch resumes. A killed run's hidden temp folders beside <out> are removed first.
--smoke-test: 8 synthetic faces whatever the source.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from facesr.config import load_section, require

SECTION = "download"
KEYS = ("source", "url", "sha256", "archive", "folder", "synthetic_count", "synthetic_size", "seed",
        "retries", "backoff_s", "workers", "on_error")
SMOKE_FACES = 8


def run(params: dict[str, Any], *, out: str | Path, cache: str | Path | None = None,
        smoke_test: bool = False) -> dict[str, Any]:
    from facesr.data.download import download

    require(params, *KEYS, where=f"params.yaml {SECTION}")
    kwargs = {k: params[k] for k in KEYS}
    if smoke_test:
        kwargs.update(source="synthetic", synthetic_count=SMOKE_FACES)
    return download(out, cache_dir=cache, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stages.download", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (reads its download: section)")
    parser.add_argument("--out", required=True, help="output folder (gets CelebAMask-HQ/)")
    parser.add_argument("--cache", default=None, help="where the URL source keeps its zip and .part file")
    parser.add_argument("--smoke-test", action="store_true", help=f"{SMOKE_FACES} synthetic faces")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(load_section(args.params, SECTION), out=args.out, cache=args.cache, smoke_test=args.smoke_test)
    except ValueError as exc:
        print(f"download: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
