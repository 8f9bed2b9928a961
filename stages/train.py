"""DVC stage `train`: SRResNet, Method 1 and any ablation variants, as Ray Tune trials tracked in MLflow.

Reads the `train:` section (variants, search, select, loop, resources, max_failures, smoke_test;
docs/training.md has every key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages._cli import command


def run(params: dict[str, Any], *, data: str | Path, models: str | Path, metrics: str | Path, curves: str | Path,
        workdir: str | Path, mlflow: dict[str, Any], profile: str | None, smoke_test: bool = False,
        source: str = "params.yaml") -> dict[str, Any]:
    """Train every trial of the section, export the best per variant; returns the metrics summary.

    Args:
        data: prepared data folder (downscale stage output)
        models: folder for the exported <variant>.pt files (facesr-generator/1)
        metrics: metrics JSON to write
        curves: folder for the per-variant CSV curves
        workdir: trial checkpoints (not a DVC out: a rerun resumes unfinished trials)
        mlflow: params.yaml's top-level mlflow: section (tracking_uri, experiment)
        profile: params.yaml's profile: (MLflow's profile tag)
        smoke_test: a few steps per trial (the smoke_test overrides)
    """
    from facesr.train.config import parse_stage
    from facesr.train.driver import run_stage

    config = parse_stage(params, stage="train", gan=False, smoke_test=smoke_test, mlflow=mlflow,
                         profile=profile, source=source)
    return run_stage(config, data=data, models=models, metrics=metrics, curves=curves, workdir=workdir,
                     smoke_test=smoke_test)


main = command(run)
if __name__ == "__main__":
    raise SystemExit(main())
