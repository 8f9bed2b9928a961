"""The `download` stage as the Prefect flow `download`: `python -m flows.download <the flags of python -m stages.download>`.

The command line is the stage's own (`stages.download.main`: the params parsed once into the typed config,
the same exit codes and JSON summary on stdout) with this flow as its runner; the flow's one task is
the stage's `run`. DVC decides what is stale, so no task caches; only this I/O task retries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from facesr.config import DownloadParams
from flows import log_summary
from stages import download

fetch_faces = task(download.run, name="fetch-faces", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=30,
                   description="Fetch or make the faces (I/O: retried twice after a dropped connection; the URL source resumes).")


@flow(name="download", description=(download.__doc__ or "").splitlines()[0])
def download_flow(params: DownloadParams, out: str | Path, cache: str | Path | None = None,
                  smoke_test: bool = False) -> dict[str, Any]:
    return log_summary("download", fetch_faces(params, out=out, cache=cache, smoke_test=smoke_test))


def main(argv: list[str] | None = None) -> int:
    return download.main(argv, run=download_flow, prog="python -m flows.download")


if __name__ == "__main__":
    raise SystemExit(main())
