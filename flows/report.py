"""The `report` stage as the Prefect flow `report`: `python -m flows.report <the flags of python -m stages.report>`.

The command line parses the params once (as `python -m stages.report` does) and runs the flow on the
typed config; exit codes and the JSON summary on stdout are the stage's (stages._cli). DVC decides what
is stale, so no task caches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from facesr.config import ReportParams, load_report
from stages import _cli, report


@task(name="build-report", cache_policy=NO_CACHE)
def build_report(
    params: ReportParams,
    eval: str | Path,
    per_image: str | Path,
    images: str | Path,
    train_curves: str | Path,
    gan_curves: str | Path,
    out: str | Path,
    smoke_test: bool,
) -> dict[str, Any]:
    """Build the HTML and markdown report."""
    return report.run(
        params,
        eval=eval,
        per_image=per_image,
        images=images,
        train_curves=train_curves,
        gan_curves=gan_curves,
        out=out,
        smoke_test=smoke_test,
    )


@flow(name="report", description=(report.__doc__ or "").splitlines()[0])
def report_flow(
    params: ReportParams,
    eval: str | Path,
    per_image: str | Path,
    images: str | Path,
    train_curves: str | Path,
    gan_curves: str | Path,
    out: str | Path,
    smoke_test: bool = False,
) -> dict[str, Any]:
    summary = build_report(
        params,
        eval=eval,
        per_image=per_image,
        images=images,
        train_curves=train_curves,
        gan_curves=gan_curves,
        out=out,
        smoke_test=smoke_test,
    )
    get_run_logger().info("report: %s", json.dumps(summary, default=str))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = report.parser("python -m flows.report").parse_args(argv)
    return _cli.report(
        lambda: report_flow(
            load_report(args.params),
            eval=args.eval,
            per_image=args.per_image,
            images=args.images,
            train_curves=args.train_curves,
            gan_curves=args.gan_curves,
            out=args.out,
            smoke_test=args.smoke_test,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
