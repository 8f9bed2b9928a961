"""The `train` stage as the Prefect flow `train`: `python -m flows.train <the flags of python -m stages.train>`.

The command line parses the params once (as `python -m stages.train` does) and runs the flow on the
typed config; exit codes and the JSON summary on stdout are the stage's (stages._cli). DVC decides what
is stale, so no task caches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from facesr.train.config import StageConfig
from stages import _cli, train


@task(name="train-trials", cache_policy=NO_CACHE)
def train_trials(
    config: StageConfig,
    data: str | Path,
    models: str | Path,
    metrics: str | Path,
    curves: str | Path,
    workdir: str | Path,
    smoke_test: bool,
) -> dict[str, Any]:
    """Train every trial, export the best per variant."""
    return train.run(
        config, data=data, models=models, metrics=metrics, curves=curves, workdir=workdir, smoke_test=smoke_test
    )


@flow(name="train", description=(train.__doc__ or "").splitlines()[0])
def train_flow(
    config: StageConfig,
    data: str | Path,
    models: str | Path,
    metrics: str | Path,
    curves: str | Path,
    workdir: str | Path,
    smoke_test: bool = False,
) -> dict[str, Any]:
    summary = train_trials(
        config, data=data, models=models, metrics=metrics, curves=curves, workdir=workdir, smoke_test=smoke_test
    )
    get_run_logger().info("train: %s", json.dumps(summary, default=str))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = train.parser("python -m flows.train").parse_args(argv)
    return _cli.report(
        lambda: train_flow(
            train.load(args.params, args.smoke_test),
            data=args.data,
            models=args.models,
            metrics=args.metrics,
            curves=args.curves,
            workdir=args.workdir,
            smoke_test=args.smoke_test,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
