"""The `downscale` stage as the Prefect flow `downscale`: `python -m flows.downscale <the flags of python -m stages.downscale>`.

The command line parses the params once (as `python -m stages.downscale` does) and runs the flow on the
typed config; exit codes and the JSON summary on stdout are the stage's (stages._cli). DVC decides what
is stale, so no task caches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from facesr.config import DownscaleParams, load_downscale
from stages import _cli, downscale


@task(name="pack-faces", cache_policy=NO_CACHE)
def pack_faces(
    params: DownscaleParams, raw: str | Path, merged: str | Path, out: str | Path, smoke_test: bool
) -> dict[str, Any]:
    """Downscale, split and pack the faces."""
    return downscale.run(params, raw=raw, merged=merged, out=out, smoke_test=smoke_test)


@flow(name="downscale", description=(downscale.__doc__ or "").splitlines()[0])
def downscale_flow(
    params: DownscaleParams, raw: str | Path, merged: str | Path, out: str | Path, smoke_test: bool = False
) -> dict[str, Any]:
    summary = pack_faces(params, raw=raw, merged=merged, out=out, smoke_test=smoke_test)
    get_run_logger().info("downscale: %s", json.dumps(summary, default=str))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = downscale.parser("python -m flows.downscale").parse_args(argv)
    return _cli.report(
        lambda: downscale_flow(
            load_downscale(args.params), raw=args.raw, merged=args.merged, out=args.out, smoke_test=args.smoke_test
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
