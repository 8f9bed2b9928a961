"""Prefect flow of the `download` stage: Fetch CelebAMask-HQ (URL, archive, folder) or make synthetic faces into the official layout.

python -m flows.download <the flags of python -m stages.download>
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._stage import load_params, main_for
from stages import download as stage


# A download is I/O: a dropped connection is worth a retry (the stage resumes partial files).
@task(name="run-download", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=30)
def run_download(
    params: dict[str, Any],
    *,
    out: str,
    cache: str | None,
    smoke_test: bool,
) -> dict[str, Any]:
    return stage.run(params, out=out, cache=cache, smoke_test=smoke_test)


@flow(name="download", log_prints=True)
def download_flow(
    params_path: str = "params.yaml",
    *,
    out: str,
    cache: str | None = None,
    smoke_test: bool = False,
) -> dict[str, Any]:
    params = load_params(params_path, "download")
    summary = run_download(params, out=out, cache=cache, smoke_test=smoke_test)
    print(f"download: {summary}")
    return summary


def main(argv: list[str] | None = None) -> int:
    return main_for(stage.build_parser, download_flow, argv)


if __name__ == "__main__":
    raise SystemExit(main())
