"""Recipe probe: one short training trial of a profile's variant, with overrides; prints its val scores.

    .venv/bin/python benchmarks/recipe_probe.py --data data/prepared --profile mini-cpu --variant srresnet \
        --set steps=800 --set lr=1.25e-4 --model-arg num_feat=32 [--threads 2] [--out benchmarks/recipe_probe.json]

A quick way to compare recipe choices (learning rate, width, depth, loss weights) before spending a
full `dvc exp run` on one: the trial is exactly what the train stage runs for that variant (the
profile's merged `train` section, `parse_stage`, `facesr.train.loop.train`), minus Ray and MLflow, with
`--set loop_key=value` and `--model-arg key=value` applied on top (values are YAML: `1.25e-4` is a
float here, `{w_coarse: 0.25, w_parsing: 1.0, w_fine: 1.0}` a mapping). Each run appends one row to
`--out` with the overrides, the final val scores, the wall time and the machine. `--smoke-test` uses
the train section's smoke-test sizes. A probe is one seed on the val faces: differences under ~0.05 dB
are within what a seed moves.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from facesr.config import ParamsError, RunContext, load_context, load_section  # noqa: E402


def _pairs(items: list[str], what: str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParamsError(f"{what} {item!r}: expected key=value")
        out[key] = yaml.safe_load(value)
    return out


def probe_trial(params_path: Path, profile: str, variant: str, loop: dict, model_args: dict,
                smoke_test: bool):
    """The train stage's trial for `variant` under `profile`, with the overrides applied."""
    from facesr.train.config import parse_stage

    section = load_section(params_path, "train", profile=profile)
    if variant not in section["variants"]:
        raise ParamsError(f"profile {profile!r}: no train variant {variant!r} "
                          f"(has {', '.join(section['variants'])})")
    unknown = sorted(set(loop) - set(section["loop"]) - set(section["search"]))
    if unknown:
        raise ParamsError(f"--set {', '.join(unknown)}: not a train.loop or train.search setting")
    section["variants"] = {variant: section["variants"][variant]}
    # one trial: the first point of the grid, with --set replacing a searched key's values
    section["search"] = {k: [loop[k]] if k in loop else list(v)[:1] for k, v in section["search"].items()}
    section["loop"].update({k: v for k, v in loop.items() if k not in section["search"]}, val_lpips=False)
    section["variants"][variant]["model_args"].update(model_args)
    return parse_stage(section, stage="train", gan=False, smoke_test=smoke_test, source=str(params_path),
                       context=RunContext(profile, load_context(params_path).mlflow)).trials[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="prepared data (the downscale stage's output)")
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--profile", default="mini-cpu")
    ap.add_argument("--variant", default="method1")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a train.loop setting")
    ap.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default="", help="trial folder (default: a temporary one)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "recipe_probe.json"))
    ap.add_argument("--smoke-test", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from facesr.tracking import hardware
    from facesr.train.checkpoint import RunIdentity
    from facesr.train.driver import shared_identity
    from facesr.train.loop import train

    loop, model_args = _pairs(args.set, "--set"), _pairs(args.model_arg, "--model-arg")
    trial = probe_trial(Path(args.params), args.profile, args.variant, loop, model_args, args.smoke_test)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    identity = RunIdentity(params=trial.params_hash, **shared_identity(Path(args.data), None))
    with tempfile.TemporaryDirectory() as tmp:
        result = train(trial, data_root=args.data, workdir=args.workdir or tmp, identity=identity)
    row = {"profile": args.profile, "variant": args.variant, "set": loop, "model_args": model_args,
           "steps": trial.loop.steps, "threads": args.threads, "smoke_test": args.smoke_test,
           "val": {k: round(v, 4) for k, v in result.metrics.items()},
           "wall_s": round(time.perf_counter() - started, 1), "machine": hardware(),
           "date": time.strftime("%Y-%m-%d")}
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.is_file() else []
    out.write_text(json.dumps(rows + [row], indent=1) + "\n")
    print(f"{args.variant} {loop} {model_args}: val_psnr {row['val']['val_psnr']:.3f} "
          f"val_ssim {row['val']['val_ssim']:.4f} in {row['wall_s']:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
