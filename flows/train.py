"""Prefect flow of the `train` stage: Train SRResNet and Method 1 (Ray Tune trials, MLflow tracking).

python -m flows.train <the flags of python -m stages.train>
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from facesr.config import section_source
from flows._stage import load_params, main_for
from stages import train as stage


# Compute, not I/O: a failure here is a bug or bad input, so it is not retried.
@task(name="run-train", cache_policy=NO_CACHE)
def run_train(
    params: dict[str, Any],
    *,
    data: str,
    models: str,
    metrics: str,
    curves: str,
    workdir: str,
    smoke_test: bool,
    source: str,
) -> dict[str, Any]:
    return stage.run(
        params,
        source=source,
        data=data,
        models=models,
        metrics=metrics,
        curves=curves,
        workdir=workdir,
        smoke_test=smoke_test,
    )


@flow(name="train", log_prints=True)
def train_flow(
    params_path: str = "params.yaml",
    *,
    data: str,
    models: str,
    metrics: str,
    curves: str,
    workdir: str,
    smoke_test: bool = False,
) -> dict[str, Any]:
    params = load_params(params_path, "train")
    summary = run_train(
        params,
        data=data,
        models=models,
        metrics=metrics,
        curves=curves,
        workdir=workdir,
        smoke_test=smoke_test,
        source=section_source(params_path),
    )
    print(f"train: {summary}")
    return summary


def main(argv: list[str] | None = None) -> int:
    return main_for(stage.build_parser, train_flow, argv)


if __name__ == "__main__":
    raise SystemExit(main())
