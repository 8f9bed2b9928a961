"""DVC stage `report`: reports/index.html + reports/report.md + reports/img/ from the evaluation.

Reads the `report:` section (title, grid_faces, worst_faces, worst_by, crop [y, x, h, w] of the
Fig. 4.3 zoom, crop_faces, parsing_faces; commented in params.yaml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facesr.config import ParamsError, require
from facesr.fileio import atomic_dir, sweep_stale
from stages._cli import command

KEYS = ("title", "grid_faces", "worst_faces", "worst_by", "crop", "crop_faces", "parsing_faces")


def run(params: dict[str, Any], *, eval: str | Path, per_image: str | Path, images: str | Path,
        train_curves: str | Path, gan_curves: str | Path, out: str | Path, smoke_test: bool = False,
        source: str = "params.yaml") -> dict[str, Any]:
    """Build the report into a temp folder beside `out`, then put it in place.

    Args:
        eval: metrics JSON of the evaluate stage
        per_image: per-image CSV of the evaluate stage
        images: images folder of the evaluate stage
        train_curves: curve CSVs of the train stage
        gan_curves: curve CSVs of the train_gan stage
        out: report folder to write (index.html, report.md, img/)
        smoke_test: two faces per figure
    """
    from facesr.report import build_report

    require(params, *KEYS, where=f"{source}: report")
    crop = [int(v) for v in params["crop"]]
    if len(crop) != 4 or crop[2] < 1 or crop[3] < 1:
        raise ParamsError(f"{source}: report.crop: expected [y, x, h, w] with h, w >= 1, got {params['crop']}")
    small = 2 if smoke_test else None
    sweep_stale(out)  # what a killed run of this stage left beside it
    with atomic_dir(out) as tmp:
        summary = build_report(
            eval_json=eval, per_image_csv=per_image, images=images, out=tmp,
            curve_dirs={"train": train_curves, "gan": gan_curves}, title=str(params["title"]),
            grid_faces=small or int(params["grid_faces"]), worst_faces=small or int(params["worst_faces"]),
            worst_by=str(params["worst_by"]), crop=crop, crop_faces=small or int(params["crop_faces"]),
            parsing_faces=small or int(params["parsing_faces"]))
    return summary | {"index": str(Path(out) / "index.html")}


main = command(run)
if __name__ == "__main__":
    raise SystemExit(main())
