"""The `train_gan` stage as the Prefect flow `train_gan`: `python -m flows.train_gan <the flags of python -m stages.train_gan>`.

The command line is the stage's own (`stages.train_gan.main`: the params parsed once into the typed config,
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
from stages import train_gan

train_gan_trials = task(train_gan.run, name="train-gan-trials", cache_policy=NO_CACHE,
                        description="Train the GAN trials from Method 1, export the best generator.")


@flow(name="train_gan", description=(train_gan.__doc__ or "").splitlines()[0])
def train_gan_flow(config: StageConfig, data: str | Path, init: str | Path, models: str | Path,
                   metrics: str | Path, curves: str | Path, workdir: str | Path, smoke_test: bool = False) -> dict[str, Any]:
    return log_summary("train_gan", train_gan_trials(config, data=data, init=init, models=models,
                                                     metrics=metrics, curves=curves, workdir=workdir,
                                                     smoke_test=smoke_test))


def main(argv: list[str] | None = None) -> int:
    return train_gan.main(argv, run=train_gan_flow, prog="python -m flows.train_gan")


if __name__ == "__main__":
    raise SystemExit(main())
