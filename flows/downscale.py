"""Prefect flow of the `downscale` stage: HR 128 / LR 16 / soft parsing maps, split into train/val/test arrays.

python -m flows.downscale <the flags of python -m stages.downscale>
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._stage import load_params, main_for
from stages import downscale as stage


# Compute, not I/O: a failure here is a bug or bad input, so it is not retried.
@task(name="run-downscale", cache_policy=NO_CACHE)
def run_downscale(
    params: dict[str, Any],
    *,
    raw: str,
    merged: str,
    out: str,
    smoke_test: bool,
) -> dict[str, Any]:
    return stage.run(params, raw=raw, merged=merged, out=out, smoke_test=smoke_test)


@flow(name="downscale", log_prints=True)
def downscale_flow(
    params_path: str = "params.yaml",
    *,
    raw: str,
    merged: str,
    out: str,
    smoke_test: bool = False,
) -> dict[str, Any]:
    params = load_params(params_path, "downscale")
    summary = run_downscale(params, raw=raw, merged=merged, out=out, smoke_test=smoke_test)
    print(f"downscale: {summary}")
    return summary


def main(argv: list[str] | None = None) -> int:
    return main_for(stage.build_parser, downscale_flow, argv)


if __name__ == "__main__":
    raise SystemExit(main())
