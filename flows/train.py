"""The `train` stage as the Prefect flow `train`: `python -m flows.train <the flags of python -m stages.train>`.

The command line is the stage's own (`stages.train.main`: the params parsed once into the typed config,
the same exit codes and JSON summary on stdout) with this flow as its runner; the flow's one task is
the stage's `run`. DVC decides what is stale, so no task caches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from facesr.train.config import StageConfig
from flows import log_summary
from stages import train

train_trials = task(train.run, name="train-trials", cache_policy=NO_CACHE,
                    description="Train every trial, export the best per variant.")


@flow(name="train", description=(train.__doc__ or "").splitlines()[0])
def train_flow(config: StageConfig, data: str | Path, models: str | Path, metrics: str | Path,
               curves: str | Path, workdir: str | Path, smoke_test: bool = False) -> dict[str, Any]:
    return log_summary("train", train_trials(config, data=data, models=models, metrics=metrics, curves=curves,
                                             workdir=workdir, smoke_test=smoke_test))


def main(argv: list[str] | None = None) -> int:
    return train.main(argv, run=train_flow, prog="python -m flows.train")


if __name__ == "__main__":
    raise SystemExit(main())
