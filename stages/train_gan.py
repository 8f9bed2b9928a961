"""DVC stage `train_gan`: Method 2, the GAN whose generator starts from the trained Method 1.

Reads the `train_gan:` section: the layout of `train:` plus the GAN's loop keys (docs/training.md);
its one variant `method2` is registered as facesr-gan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages._cli import command


def run(params: dict[str, Any], *, data: str | Path, init: str | Path, models: str | Path, metrics: str | Path,
        curves: str | Path, workdir: str | Path, mlflow: dict[str, Any], profile: str | None, smoke_test: bool = False,
        source: str = "params.yaml") -> dict[str, Any]:
    """Train the GAN trials from `init` (an exported Method 1 file), export the best generator.

    Args:
        data: prepared data folder (downscale stage output)
        init: exported Method 1 generator the GAN starts from
        models: folder for the exported method2.pt
        metrics: metrics JSON to write
        curves: folder for the CSV curves
        workdir: trial checkpoints (not a DVC out: a rerun resumes unfinished trials)
        mlflow: params.yaml's top-level mlflow: section (tracking_uri, experiment)
        profile: params.yaml's profile: (MLflow's profile tag)
        smoke_test: a few steps per trial (the smoke_test overrides)
    """
    from facesr.train.config import parse_stage
    from facesr.train.driver import run_stage

    config = parse_stage(params, stage="train_gan", gan=True, smoke_test=smoke_test, mlflow=mlflow,
                         profile=profile, source=source)
    return run_stage(config, data=data, models=models, metrics=metrics, curves=curves, workdir=workdir,
                     smoke_test=smoke_test, init=init)


main = command(run)
if __name__ == "__main__":
    raise SystemExit(main())
