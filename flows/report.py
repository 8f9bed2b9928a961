"""Prefect flow of the `report` stage: Build reports/index.html and reports/report.md.

python -m flows.report <the flags of python -m stages.report>
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._stage import load_params, main_for
from stages import report as stage


# Compute, not I/O: a failure here is a bug or bad input, so it is not retried.
@task(name="run-report", cache_policy=NO_CACHE)
def run_report(
    params: dict[str, Any],
    *,
    eval: str,
    per_image: str,
    images: str,
    train_curves: str,
    gan_curves: str,
    out: str,
    smoke_test: bool,
) -> dict[str, Any]:
    return stage.run(
        params,
        eval=eval,
        per_image=per_image,
        images=images,
        train_curves=train_curves,
        gan_curves=gan_curves,
        out=out,
        smoke_test=smoke_test,
    )


@flow(name="report", log_prints=True)
def report_flow(
    params_path: str = "params.yaml",
    *,
    eval: str,
    per_image: str,
    images: str,
    train_curves: str,
    gan_curves: str,
    out: str,
    smoke_test: bool = False,
) -> dict[str, Any]:
    params = load_params(params_path, "report")
    summary = run_report(
        params,
        eval=eval,
        per_image=per_image,
        images=images,
        train_curves=train_curves,
        gan_curves=gan_curves,
        out=out,
        smoke_test=smoke_test,
    )
    print(f"report: {summary}")
    return summary


def main(argv: list[str] | None = None) -> int:
    return main_for(stage.build_parser, report_flow, argv)


if __name__ == "__main__":
    raise SystemExit(main())
