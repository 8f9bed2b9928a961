"""DVC stage `train`: SRResNet, Method 1 and any ablation variants, as Ray Tune trials tracked in MLflow.

    python -m stages.train --params params.yaml --data data/prepared --models models/train \
        --metrics metrics/train.json --curves metrics/train --workdir runs/train [--smoke-test]

Reads the `train:` section of params.yaml (docs/training.md has every key):
    variants     name -> {model, model_args, registered_name}; one exported file per variant
    search       key -> list of values (lr, seed, ...), expanded as a grid; each variant runs every point
    select       {metric, mode}: how the best trial of a variant is chosen (val_psnr, max)
    loop         the training loop's settings (RMSProp, steps, batch, schedule, validation, checkpoints)
    resources    {cpus_per_trial, gpus_per_trial}; GPUs are asked for only where CUDA is present
    max_failures retries of a failed trial (it resumes from its last checkpoint)
    smoke_test   overrides of `loop` for --smoke-test (a few steps)
    mlflow       {tracking_uri, experiment, profile}; $MLFLOW_TRACKING_URI wins over tracking_uri

Outputs: <models>/<variant>.pt (facesr-generator/1 files), <curves>/<variant>.csv, <metrics> (JSON).
<workdir> holds each trial's checkpoints; it is not a DVC out, so a rerun resumes unfinished trials.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from facesr.config import load_section, section_source

SECTION = "train"


def run(params: dict[str, Any], *, data: str | Path, models: str | Path, metrics: str | Path,
        curves: str | Path, workdir: str | Path, smoke_test: bool = False, source: str = "params.yaml") -> dict[str, Any]:
    """Train every trial of the section, export the best per variant; returns the metrics summary."""
    from facesr.train.config import parse_stage
    from facesr.train.driver import run_stage

    config = parse_stage(params, stage=SECTION, gan=False, smoke_test=smoke_test, source=source)
    return run_stage(config, data=data, models=models, metrics=metrics, curves=curves, workdir=workdir,
                     smoke_test=smoke_test)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stages.train", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (reads its train: section)")
    parser.add_argument("--data", required=True, help="prepared data folder (downscale stage output)")
    parser.add_argument("--models", required=True, help="folder for the exported <variant>.pt files")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    parser.add_argument("--curves", required=True, help="folder for the per-variant CSV curves")
    parser.add_argument("--workdir", required=True, help="trial checkpoints (kept for resume; not a DVC out)")
    parser.add_argument("--smoke-test", action="store_true", help="a few steps per trial (the smoke_test overrides)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(load_section(args.params, SECTION), source=section_source(args.params), data=args.data, models=args.models,
                      metrics=args.metrics, curves=args.curves, workdir=args.workdir, smoke_test=args.smoke_test)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for variant, v in summary["variants"].items():
        print(f"{variant}: {v['metrics'].get('val_psnr', float('nan')):.2f} dB val PSNR -> {v['model']} "
              f"({v['registered_model']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
