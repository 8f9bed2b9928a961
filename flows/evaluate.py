"""Prefect flow of the `evaluate` stage: Score Bicubic, SRResNet, Method 1 and Method 2 on the test split.

python -m flows.evaluate <the flags of python -m stages.evaluate>
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._stage import load_params, main_for
from stages import evaluate as stage


# Compute, not I/O: a failure here is a bug or bad input, so it is not retried.
@task(name="run-evaluate", cache_policy=NO_CACHE)
def run_evaluate(
    params: dict[str, Any],
    *,
    data: str,
    models: str,
    gan: str,
    out: str,
    per_image: str,
    images: str,
    smoke_test: bool,
) -> dict[str, Any]:
    return stage.run(
        params,
        data=data,
        models=models,
        gan=gan,
        out=out,
        per_image=per_image,
        images=images,
        smoke_test=smoke_test,
    )


@flow(name="evaluate", log_prints=True)
def evaluate_flow(
    params_path: str = "params.yaml",
    *,
    data: str,
    models: str,
    gan: str,
    out: str,
    per_image: str,
    images: str,
    smoke_test: bool = False,
) -> dict[str, Any]:
    params = load_params(params_path, "evaluate")
    summary = run_evaluate(
        params,
        data=data,
        models=models,
        gan=gan,
        out=out,
        per_image=per_image,
        images=images,
        smoke_test=smoke_test,
    )
    print(f"evaluate: {summary}")
    return summary


def main(argv: list[str] | None = None) -> int:
    return main_for(stage.build_parser, evaluate_flow, argv)


if __name__ == "__main__":
    raise SystemExit(main())
