"""The `report` stage as the Prefect flow `report`: `python -m flows.report <the flags of python -m stages.report>`.

The command line is the stage's own (`stages.report.main`: the params parsed once into the typed config,
the same exit codes and JSON summary on stdout) with this flow as its runner; the flow's one task is
the stage's `run`. DVC decides what is stale, so no task caches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from facesr.config import ReportParams
from flows import log_summary
from stages import report

build_report = task(report.run, name="build-report", cache_policy=NO_CACHE, description="Build the report.")


@flow(name="report", description=(report.__doc__ or "").splitlines()[0])
def report_flow(params: ReportParams, eval: str | Path, per_image: str | Path, images: str | Path,
                train_curves: str | Path, gan_curves: str | Path, out: str | Path, smoke_test: bool = False) -> dict[str, Any]:
    return log_summary("report", build_report(params, eval=eval, per_image=per_image, images=images,
                                              train_curves=train_curves, gan_curves=gan_curves, out=out,
                                              smoke_test=smoke_test))


def main(argv: list[str] | None = None) -> int:
    return report.main(argv, run=report_flow, prog="python -m flows.report")


if __name__ == "__main__":
    raise SystemExit(main())
