"""DVC stage `report`: reports/index.html + reports/report.md + reports/img/ from the evaluation.

Reads the `report:` section (title, grid_faces, worst_faces, worst_by, crop [y, x, h, w] of the
Fig. 4.3 zoom, crop_faces, parsing_faces; commented in params.yaml).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facesr.config import ReportParams, load_report
from facesr.fileio import atomic_dir, sweep_stale
from stages import _cli

SMOKE_FACES = 2


def run(params: ReportParams, *, eval: str | Path, per_image: str | Path, images: str | Path,
        train_curves: str | Path, gan_curves: str | Path, out: str | Path, smoke_test: bool = False) -> dict[str, Any]:
    """Build the report into a temp folder beside `out`, then put it in place."""
    from facesr.report import build_report

    small = SMOKE_FACES if smoke_test else None
    sweep_stale(out)  # what a killed run of this stage left beside it
    with atomic_dir(out) as tmp:
        summary = build_report(
            eval_json=eval, per_image_csv=per_image, images=images, out=tmp,
            curve_dirs={"train": train_curves, "gan": gan_curves}, title=params.title,
            grid_faces=small or params.grid_faces, worst_faces=small or params.worst_faces,
            worst_by=params.worst_by, crop=list(params.crop), crop_faces=small or params.crop_faces,
            parsing_faces=small or params.parsing_faces)
    return summary | {"index": str(Path(out) / "index.html")}


def parser(prog: str = "python -m stages.report") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="params file (reads its report: section)")
    p.add_argument("--eval", required=True, help="metrics JSON of the evaluate stage")
    p.add_argument("--per-image", required=True, help="per-image CSV of the evaluate stage")
    p.add_argument("--images", required=True, help="images folder of the evaluate stage")
    p.add_argument("--train-curves", required=True, help="curve CSVs of the train stage")
    p.add_argument("--gan-curves", required=True, help="curve CSVs of the train_gan stage")
    p.add_argument("--out", required=True, help="report folder to write (index.html, report.md, img/)")
    p.add_argument("--smoke-test", action="store_true", help="two faces per figure")
    return p


def main(argv: list[str] | None = None, run: Callable[..., dict[str, Any]] = run,
         prog: str = "python -m stages.report") -> int:
    """The command line: parse the flags and params, then `run` (this stage's, or its Prefect flow:
    flows.report); the exit code of stages._cli.report."""
    args = parser(prog).parse_args(argv)
    return _cli.report(lambda: run(load_report(args.params), eval=args.eval, per_image=args.per_image,
                                   images=args.images, train_curves=args.train_curves, gan_curves=args.gan_curves,
                                   out=args.out, smoke_test=args.smoke_test))


if __name__ == "__main__":
    raise SystemExit(main())
