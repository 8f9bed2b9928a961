"""The `train_gan` stage as the Prefect flow `train_gan`: `python -m flows.train_gan <the flags of python -m stages.train_gan>`.

The command line parses the params once (as `python -m stages.train_gan` does) and runs the flow on the
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
from stages import _cli, train_gan


@task(name="train-gan-trials", cache_policy=NO_CACHE)
def train_gan_trials(
    config: StageConfig,
    data: str | Path,
    init: str | Path,
    models: str | Path,
    metrics: str | Path,
    curves: str | Path,
    workdir: str | Path,
    smoke_test: bool,
) -> dict[str, Any]:
    """Train the GAN trials from --init, export the best generator."""
    return train_gan.run(
        config,
        data=data,
        init=init,
        models=models,
        metrics=metrics,
        curves=curves,
        workdir=workdir,
        smoke_test=smoke_test,
    )


@flow(name="train_gan", description=(train_gan.__doc__ or "").splitlines()[0])
def train_gan_flow(
    config: StageConfig,
    data: str | Path,
    init: str | Path,
    models: str | Path,
    metrics: str | Path,
    curves: str | Path,
    workdir: str | Path,
    smoke_test: bool = False,
) -> dict[str, Any]:
    summary = train_gan_trials(
        config,
        data=data,
        init=init,
        models=models,
        metrics=metrics,
        curves=curves,
        workdir=workdir,
        smoke_test=smoke_test,
    )
    get_run_logger().info("train_gan: %s", json.dumps(summary, default=str))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = train_gan.parser("python -m flows.train_gan").parse_args(argv)
    return _cli.report(
        lambda: train_gan_flow(
            train_gan.load(args.params, args.smoke_test),
            data=args.data,
            init=args.init,
            models=args.models,
            metrics=args.metrics,
            curves=args.curves,
            workdir=args.workdir,
            smoke_test=args.smoke_test,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
