"""DVC stage `train_gan`: Method 2, the GAN whose generator starts from the trained Method 1.

    python -m stages.train_gan --params params.yaml --data data/prepared --init models/train/method1.pt \
        --models models/gan --metrics metrics/train_gan.json --curves metrics/gan --workdir runs/train_gan \
        [--smoke-test]

Reads the `train_gan:` section of params.yaml (docs/training.md has every key): the same layout as
`train:` (variants, search, select, loop, resources, max_failures, smoke_test, mlflow); its single
variant `method2` is registered as facesr-gan. `loop` adds alpha, beta, gamma (G loss
``alpha*L_content + beta*L_vgg + gamma*L_adv``), perceptual_net (vgg19 | vgg16), lr_g, lr_d and
discriminator_args.

Outputs: <models>/method2.pt, <curves>/method2.csv, <metrics> (JSON); trial checkpoints in <workdir>.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from facesr.config import load_section, section_source

SECTION = "train_gan"


def run(params: dict[str, Any], *, data: str | Path, init: str | Path, models: str | Path, metrics: str | Path,
        curves: str | Path, workdir: str | Path, smoke_test: bool = False, source: str = "params.yaml") -> dict[str, Any]:
    """Train the GAN trials from `init` (an exported Method 1 file), export the best generator."""
    from facesr.train.config import parse_stage
    from facesr.train.driver import run_stage

    config = parse_stage(params, stage=SECTION, gan=True, smoke_test=smoke_test, source=source)
    return run_stage(config, data=data, models=models, metrics=metrics, curves=curves, workdir=workdir,
                     smoke_test=smoke_test, init=init)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stages.train_gan", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (reads its train_gan: section)")
    parser.add_argument("--data", required=True, help="prepared data folder (downscale stage output)")
    parser.add_argument("--init", required=True, help="exported Method 1 generator the GAN starts from")
    parser.add_argument("--models", required=True, help="folder for the exported method2.pt")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    parser.add_argument("--curves", required=True, help="folder for the CSV curves")
    parser.add_argument("--workdir", required=True, help="trial checkpoints (kept for resume; not a DVC out)")
    parser.add_argument("--smoke-test", action="store_true", help="a few steps per trial (the smoke_test overrides)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(load_section(args.params, SECTION), source=section_source(args.params), data=args.data, init=args.init, models=args.models,
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
