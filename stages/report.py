"""DVC stage `report`: reports/index.html + reports/report.md + reports/img/ from the evaluation.

    python -m stages.report --params params.yaml --eval metrics/eval.json \
        --per-image metrics/eval_per_image.csv --images evaluation \
        --train-curves metrics/train --gan-curves metrics/gan --out reports [--smoke-test]

Reads the `report:` section of params.yaml:
    title          page title
    grid_faces     test faces in the Fig. 4.2-style grid
    worst_faces    failure cases shown (lowest PSNR of `worst_by`)
    worst_by       the model whose PSNR ranks the failure cases
    crop           [y, x, h, w] of the with/without-GAN zoom (Fig. 4.3), in 128x128 pixels
    crop_faces     faces in that comparison
    parsing_faces  faces with predicted parsing maps drawn over the HR face
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from facesr.config import ParamsError, load_section, require

SECTION = "report"
KEYS = ("title", "grid_faces", "worst_faces", "worst_by", "crop", "crop_faces", "parsing_faces")


def run(
    params: dict[str, Any],
    *,
    eval: str | Path,
    per_image: str | Path,
    images: str | Path,
    train_curves: str | Path,
    gan_curves: str | Path,
    out: str | Path,
    smoke_test: bool = False,
) -> dict[str, Any]:
    """Build the report into a temp folder beside `out`, then put it in place."""
    from facesr.fileio import atomic_dir, sweep_stale
    from facesr.report import build_report

    require(params, *KEYS, where=f"params.yaml {SECTION}")
    crop = [int(v) for v in params["crop"]]
    if len(crop) != 4 or crop[2] < 1 or crop[3] < 1:
        raise ParamsError(
            f"params.yaml {SECTION}.crop: expected [y, x, h, w] with h, w >= 1, got {params['crop']}"
        )
    small = 2 if smoke_test else None
    sweep_stale(out)  # what a killed run of this stage left beside it
    with atomic_dir(out) as tmp:
        summary = build_report(
            eval_json=eval,
            per_image_csv=per_image,
            images=images,
            curve_dirs={"train": train_curves, "gan": gan_curves},
            out=tmp,
            grid_faces=small or int(params["grid_faces"]),
            worst_faces=small or int(params["worst_faces"]),
            worst_by=str(params["worst_by"]),
            crop=crop,
            crop_faces=small or int(params["crop_faces"]),
            parsing_faces=small or int(params["parsing_faces"]),
            title=str(params["title"]),
        )
    return summary | {"index": str(out / "index.html")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.report", description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="params file (reads its report: section)")
    p.add_argument("--eval", required=True, help="metrics JSON of the evaluate stage")
    p.add_argument("--per-image", dest="per_image", required=True, help="per-image CSV of the evaluate stage")
    p.add_argument("--images", required=True, help="images folder of the evaluate stage")
    p.add_argument("--train-curves", dest="train_curves", required=True, help="curve CSVs of the train stage")
    p.add_argument("--gan-curves", dest="gan_curves", required=True, help="curve CSVs of the train_gan stage")
    p.add_argument("--out", required=True, help="report folder to write (index.html, report.md, img/)")
    p.add_argument("--smoke-test", action="store_true", help="two faces per figure")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        params = load_section(args.params, SECTION)
        summary = run(
            params,
            eval=args.eval,
            per_image=args.per_image,
            images=args.images,
            train_curves=args.train_curves,
            gan_curves=args.gan_curves,
            out=args.out,
            smoke_test=args.smoke_test,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
