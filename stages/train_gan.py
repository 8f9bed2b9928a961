"""DVC stage `train_gan`: Method 2, the GAN whose generator starts from the trained Method 1.

Reads the `train_gan:` section: the layout of `train:` plus the GAN's loop keys (docs/training.md),
and the shared `mlflow:` and `profile:`; its one variant `method2` is registered as facesr-gan.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facesr.train.config import StageConfig, load_stage
from stages import _cli


def run(config: StageConfig, *, data: str | Path, init: str | Path, models: str | Path, metrics: str | Path,
        curves: str | Path, workdir: str | Path, smoke_test: bool = False) -> dict[str, Any]:
    """Train the GAN trials of `config` from `init` (an exported Method 1 file), export the best generator."""
    from facesr.train.driver import run_stage

    return run_stage(config, data=data, models=models, metrics=metrics, curves=curves, workdir=workdir,
                     smoke_test=smoke_test, init=init)


def load(params_path: str | Path, smoke_test: bool) -> StageConfig:
    """The `train_gan:` section and its RunContext, with the smoke-test sizes when `smoke_test`."""
    return load_stage(params_path, "train_gan", gan=True, smoke_test=smoke_test)


def parser(prog: str = "python -m stages.train_gan") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml",
                   help="params file (reads its train_gan: section and the top-level profile: and mlflow:)")
    p.add_argument("--data", required=True, help="prepared data folder (downscale stage output)")
    p.add_argument("--init", required=True, help="exported Method 1 generator the GAN starts from")
    p.add_argument("--models", required=True, help="folder for the exported method2.pt")
    p.add_argument("--metrics", required=True, help="metrics JSON to write")
    p.add_argument("--curves", required=True, help="folder for the CSV curves")
    p.add_argument("--workdir", required=True,
                   help="trial checkpoints (not a DVC out: a rerun resumes unfinished trials)")
    p.add_argument("--smoke-test", action="store_true", help="a few steps per trial (the smoke_test overrides)")
    return p


def main(argv: list[str] | None = None, run: Callable[..., dict[str, Any]] = run,
         prog: str = "python -m stages.train_gan") -> int:
    """The command line: parse the flags and params, then `run` (this stage's, or its Prefect flow:
    flows.train_gan); the exit code of stages._cli.report."""
    args = parser(prog).parse_args(argv)
    return _cli.report(lambda: run(load(args.params, args.smoke_test), data=args.data, init=args.init,
                                   models=args.models, metrics=args.metrics, curves=args.curves,
                                   workdir=args.workdir, smoke_test=args.smoke_test))


if __name__ == "__main__":
    raise SystemExit(main())
