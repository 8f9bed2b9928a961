"""DVC stage `evaluate`: every model of Table 4.1 on the test split -> metrics, per-image CSV, images.

Reads the `evaluate:` section (models, lpips_net, batch_size, max_images, save_parsing, device, precision, channels_last;
commented in params.yaml) and the shared `mlflow:` and `profile:`; scores go to MLflow too
($MLFLOW_TRACKING_URI wins).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from facesr.config import EvaluateParams, RunContext, as_params, load_context, load_evaluate
from facesr.fileio import atomic_dir, atomic_write_text, sweep_stale
from stages import _cli

SMOKE_IMAGES = 4


def run(params: EvaluateParams, context: RunContext, *, data: str | Path, models: str | Path, gan: str | Path,
        out: str | Path, per_image: str | Path, images: str | Path, extra_models: Sequence[str] = (),
        smoke_test: bool = False) -> dict[str, Any]:
    """Score the models, write `out`, `per_image` and `images`, log to MLflow; return the means.

    `extra_models` (``NAME=FILE``, `facesr.evaluate.extra_model_paths`) are scored after those of
    `params.models`, e.g. an exported .onnx file; they join eval.json's models and comparisons, but
    have no trials and no registered versions to tag."""
    from facesr import evaluate as ev

    table = ev.model_paths(models, gan, list(params.models))
    paths = table | ev.extra_model_paths(extra_models, taken=list(table))
    for target in (images, out, per_image):
        sweep_stale(target)  # what a killed run of this stage left beside its outputs
    settings = dict(lpips_net=params.lpips_net, batch_size=params.batch_size,
                    max_images=SMOKE_IMAGES if smoke_test else params.max_images, device=params.device,
                    precision=params.precision, channels_last=params.channels_last)
    trials = ev.trial_paths(table)
    with atomic_dir(images) as tmp:
        result = ev.evaluate(data, paths, images_dir=tmp, save_parsing=params.save_parsing, **settings)
        # every seed's generator, scored the same way; its rows follow, its images are not kept
        seeds = ev.evaluate(data, {f"{m}@{t}": f for m, files in trials.items() for t, f in files.items()},
                            **settings) if trials else ev.EvalResult()
        atomic_write_text(per_image, ev.per_image_csv(result.rows + seeds.rows))
        atomic_write_text(out, ev.summary_json(result.summary, ev.comparisons(result.rows, list(paths)),
                                               ev.seed_spread(trials, seeds.summary)))
    run_id = ev.log_to_mlflow(result.summary, params=as_params(params) | {"smoke_test": smoke_test},
                              mlflow_params=vars(context.mlflow), profile=context.profile,
                              artifacts=[Path(out), Path(per_image)], data=Path(data), model_files=table)
    return {"models": list(result.summary), "n_images": len(result.ids), "mlflow_run_id": run_id,
            "psnr": {m: round(s["psnr"], 3) for m, s in result.summary.items()}}


def parser(prog: str = "python -m stages.evaluate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml",
                   help="params file (reads its evaluate: section and the top-level profile: and mlflow:)")
    p.add_argument("--data", required=True, help="prepared data folder (downscale output)")
    p.add_argument("--models", required=True,
                   help="folder with srresnet.pt and method1.pt (train output); its trials/<variant>/*.pt, where "
                        "a variant has two or more, are scored too (eval.json's `seeds`)")
    p.add_argument("--gan", required=True, help="folder with method2.pt (train_gan output)")
    p.add_argument("--out", required=True, help="metrics JSON to write (keyed by model, plus the paired `comparisons`)")
    p.add_argument("--per-image", required=True, help="per-image CSV to write")
    p.add_argument("--images", required=True, help="folder for the LR/HR/SR PNGs the report shows")
    p.add_argument("--extra-model", action="append", default=[], metavar="NAME=FILE",
                   help="also score FILE as NAME (repeatable): a generator .pt, or an .onnx export (facesr export) "
                        "run in ONNX Runtime, so the file you ship gets its own row beside the table's models")
    p.add_argument("--smoke-test", action="store_true", help="score the first 4 test faces only")
    return p


def main(argv: list[str] | None = None, run: Callable[..., dict[str, Any]] = run,
         prog: str = "python -m stages.evaluate") -> int:
    """The command line: parse the flags and params, then `run` (this stage's, or its Prefect flow:
    flows.evaluate); the exit code of stages._cli.report."""
    args = parser(prog).parse_args(argv)
    return _cli.report(lambda: run(load_evaluate(args.params), load_context(args.params), data=args.data,
                                   models=args.models, gan=args.gan, out=args.out, per_image=args.per_image,
                                   images=args.images, extra_models=list(args.extra_model),
                                   smoke_test=args.smoke_test))


if __name__ == "__main__":
    raise SystemExit(main())
