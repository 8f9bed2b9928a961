"""Prefect flow of the `train_gan` stage: Train Method 2 (GAN) from the trained Method 1 weights.

python -m flows.train_gan <the flags of python -m stages.train_gan>
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from facesr.config import section_source
from flows._stage import load_params, main_for
from stages import train_gan as stage


# Compute, not I/O: a failure here is a bug or bad input, so it is not retried.
@task(name="run-train_gan", cache_policy=NO_CACHE)
def run_train_gan(
    params: dict[str, Any],
    *,
    data: str,
    init: str,
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
        init=init,
        models=models,
        metrics=metrics,
        curves=curves,
        workdir=workdir,
        smoke_test=smoke_test,
    )


@flow(name="train_gan", log_prints=True)
def train_gan_flow(
    params_path: str = "params.yaml",
    *,
    data: str,
    init: str,
    models: str,
    metrics: str,
    curves: str,
    workdir: str,
    smoke_test: bool = False,
) -> dict[str, Any]:
    params = load_params(params_path, "train_gan")
    summary = run_train_gan(
        params,
        data=data,
        init=init,
        models=models,
        metrics=metrics,
        curves=curves,
        workdir=workdir,
        smoke_test=smoke_test,
        source=section_source(params_path),
    )
    print(f"train_gan: {summary}")
    return summary


def main(argv: list[str] | None = None) -> int:
    return main_for(stage.build_parser, train_gan_flow, argv)


if __name__ == "__main__":
    raise SystemExit(main())
