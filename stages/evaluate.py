"""DVC stage `evaluate`: every model of Table 4.1 on the test split -> metrics, per-image CSV, images.

    python -m stages.evaluate --params params.yaml --data data/prepared --models models/train \
        --gan models/gan --out metrics/eval.json --per-image metrics/eval_per_image.csv \
        --images evaluation [--smoke-test]

Reads the `evaluate:` section of params.yaml:
    models        which table rows to score, a subset of [bicubic, srresnet, method1, method2]
    lpips_net     LPIPS trunk (alex = the thesis)
    batch_size    faces per forward pass
    max_images    0 = the whole test split; N = its first N faces
    save_parsing  predicted parsing maps kept for the report (first N faces)
    device        cpu | cuda | auto
    mlflow        {tracking_uri, experiment, profile} as in train:; $MLFLOW_TRACKING_URI wins
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from facesr.config import load_section, require
from facesr.fileio import atomic_dir, atomic_write_text, sweep_stale

SECTION = "evaluate"
KEYS = ("models", "lpips_net", "batch_size", "max_images", "save_parsing", "device", "mlflow")
SMOKE_IMAGES = 4


def run(
    params: dict[str, Any],
    *,
    data: str | Path,
    models: str | Path,
    gan: str | Path,
    out: str | Path,
    per_image: str | Path,
    images: str | Path,
    smoke_test: bool = False,
) -> dict[str, Any]:
    """Score the models, write `out`, `per_image` and `images`, log to MLflow; return the means."""
    from facesr import evaluate as ev

    require(params, *KEYS, where=f"params.yaml {SECTION}")
    require(params["mlflow"], "experiment", where=f"params.yaml {SECTION}.mlflow")
    paths = ev.model_paths(models, gan, params["models"])
    max_images = SMOKE_IMAGES if smoke_test else int(params["max_images"])
    for target in (images, out, per_image):
        sweep_stale(target)  # what a killed run of this stage left beside its outputs
    with atomic_dir(images) as tmp:
        result = ev.evaluate(
            data,
            paths,
            lpips_net=str(params["lpips_net"]),
            batch_size=int(params["batch_size"]),
            max_images=max_images,
            device=str(params["device"]),
            images_dir=tmp,
            save_parsing=int(params["save_parsing"]),
        )
        atomic_write_text(per_image, ev.per_image_csv(result.rows))
        atomic_write_text(out, ev.summary_json(result.summary))
    run_id = ev.log_to_mlflow(
        result.summary,
        params=dict(params) | {"smoke_test": smoke_test},
        mlflow_params=params["mlflow"],
        artifacts=[Path(out), Path(per_image)],
    )
    return {
        "models": list(result.summary),
        "n_images": len(result.ids),
        "mlflow_run_id": run_id,
        "psnr": {m: round(s["psnr"], 3) for m, s in result.summary.items()},
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="params file (reads its evaluate: section)")
    p.add_argument("--data", required=True, help="prepared data folder (downscale output)")
    p.add_argument("--models", required=True, help="folder with srresnet.pt and method1.pt (train output)")
    p.add_argument("--gan", required=True, help="folder with method2.pt (train_gan output)")
    p.add_argument("--out", required=True, help="metrics JSON to write (keyed by model)")
    p.add_argument("--per-image", dest="per_image", required=True, help="per-image CSV to write")
    p.add_argument("--images", required=True, help="folder for the LR/HR/SR PNGs the report shows")
    p.add_argument(
        "--smoke-test", action="store_true", help=f"score the first {SMOKE_IMAGES} test faces only"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        params = load_section(args.params, SECTION)
        summary = run(
            params,
            data=args.data,
            models=args.models,
            gan=args.gan,
            out=args.out,
            per_image=args.per_image,
            images=args.images,
            smoke_test=args.smoke_test,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
