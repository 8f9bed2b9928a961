"""DVC stage `download`: the dataset in the official CelebAMask-HQ layout, from any source.

Reads the `download:` section (source: url | archive | folder | synthetic; each key is commented in
params.yaml); docs/data.md has the layout, resuming, checksums and trust on first use.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facesr.config import DownloadParams, load_download
from stages import _cli

SMOKE_FACES = 8


def run(params: DownloadParams, *, out: str | Path, cache: str | Path | None = None,
        smoke_test: bool = False) -> dict[str, Any]:
    """Fetch or make the faces into `out` (its CelebAMask-HQ/); `cache` holds the URL source's zip."""
    from facesr.data.download import download

    if smoke_test:
        params = dataclasses.replace(params, source="synthetic", synthetic_count=SMOKE_FACES)
    return download(out, cache_dir=cache, **dataclasses.asdict(params))


def parser(prog: str = "python -m stages.download") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="params file (reads its download: section)")
    p.add_argument("--out", required=True, help="output folder (gets CelebAMask-HQ/)")
    p.add_argument("--cache", default=None,
                   help="where the URL source keeps its zip and .part file (default <out>/../.download-cache)")
    p.add_argument("--smoke-test", action="store_true", help="8 synthetic faces whatever the source")
    return p


def main(argv: list[str] | None = None, run: Callable[..., dict[str, Any]] = run,
         prog: str = "python -m stages.download") -> int:
    """The command line: parse the flags and params, then `run` (this stage's, or its Prefect flow:
    flows.download); the exit code of stages._cli.report."""
    args = parser(prog).parse_args(argv)
    return _cli.report(lambda: run(load_download(args.params), out=args.out, cache=args.cache,
                                   smoke_test=args.smoke_test))


if __name__ == "__main__":
    raise SystemExit(main())
