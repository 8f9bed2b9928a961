"""The `download` stage as the Prefect flow `download`: `python -m flows.download <the flags of python -m stages.download>`.

The command line parses the params once (as `python -m stages.download` does) and runs the flow on the
typed config; exit codes and the JSON summary on stdout are the stage's (stages._cli). DVC decides what
is stale, so no task caches; only I/O retries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from facesr.config import DownloadParams, load_download
from stages import _cli, download


@task(name="fetch-faces", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=30)
def fetch_faces(
    params: DownloadParams, out: str | Path, cache: str | Path | None, smoke_test: bool
) -> dict[str, Any]:
    """Fetch or make the faces (I/O: retried twice after a dropped connection; the URL source resumes)."""
    return download.run(params, out=out, cache=cache, smoke_test=smoke_test)


@flow(name="download", description=(download.__doc__ or "").splitlines()[0])
def download_flow(
    params: DownloadParams, out: str | Path, cache: str | Path | None = None, smoke_test: bool = False
) -> dict[str, Any]:
    summary = fetch_faces(params, out=out, cache=cache, smoke_test=smoke_test)
    get_run_logger().info("download: %s", json.dumps(summary, default=str))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = download.parser("python -m flows.download").parse_args(argv)
    return _cli.report(
        lambda: download_flow(
            load_download(args.params), out=args.out, cache=args.cache, smoke_test=args.smoke_test
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
