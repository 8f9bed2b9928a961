"""DVC stage `evaluate`: every model of Table 4.1 on the test split -> metrics, per-image CSV, images.

Reads the `evaluate:` section (models, lpips_net, batch_size, max_images, save_parsing, device, precision, channels_last;
commented in params.yaml) and the shared `mlflow:` and `profile:`; scores go to MLflow too
($MLFLOW_TRACKING_URI wins).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facesr.config import require
from facesr.fileio import atomic_dir, atomic_write_text, sweep_stale
from stages._cli import command

KEYS = ("models", "lpips_net", "batch_size", "max_images", "save_parsing", "device", "precision", "channels_last")
SMOKE_IMAGES = 4


def run(params: dict[str, Any], *, data: str | Path, models: str | Path, gan: str | Path, out: str | Path,
        per_image: str | Path, images: str | Path, mlflow: dict[str, Any], profile: str | None,
        smoke_test: bool = False, source: str = "params.yaml") -> dict[str, Any]:
    """Score the models, write `out`, `per_image` and `images`, log to MLflow; return the means.

    Args:
        data: prepared data folder (downscale output)
        models: folder with srresnet.pt and method1.pt (train output); its trials/<variant>/*.pt, where
            a variant has two or more, are scored too (eval.json's `seeds`)
        gan: folder with method2.pt (train_gan output)
        out: metrics JSON to write (keyed by model, plus the paired `comparisons`)
        per_image: per-image CSV to write
        images: folder for the LR/HR/SR PNGs the report shows
        mlflow: params.yaml's top-level mlflow: section (tracking_uri, experiment)
        profile: params.yaml's profile: (MLflow's profile tag)
        smoke_test: score the first 4 test faces only
    """
    from facesr import evaluate as ev

    require(params, *KEYS, where=f"{source}: evaluate")
    require(mlflow, "experiment", where=f"{source.split(' + ')[0]}: mlflow")
    paths = ev.model_paths(models, gan, params["models"])
    for target in (images, out, per_image):
        sweep_stale(target)  # what a killed run of this stage left beside its outputs
    settings = dict(lpips_net=str(params["lpips_net"]), batch_size=int(params["batch_size"]),
                    max_images=SMOKE_IMAGES if smoke_test else int(params["max_images"]), device=str(params["device"]),
                    precision=str(params["precision"]), channels_last=params["channels_last"])
    trials = ev.trial_paths(paths)
    with atomic_dir(images) as tmp:
        result = ev.evaluate(data, paths, images_dir=tmp, save_parsing=int(params["save_parsing"]), **settings)
        # every seed's generator, scored the same way; its rows follow, its images are not kept
        seeds = ev.evaluate(data, {f"{m}@{t}": f for m, files in trials.items() for t, f in files.items()},
                            **settings) if trials else ev.EvalResult()
        atomic_write_text(per_image, ev.per_image_csv(result.rows + seeds.rows))
        atomic_write_text(out, ev.summary_json(result.summary, ev.comparisons(result.rows, list(paths)),
                                               ev.seed_spread(trials, seeds.summary)))
    run_id = ev.log_to_mlflow(result.summary, params=dict(params) | {"smoke_test": smoke_test},
                              mlflow_params={**mlflow, "profile": profile or "unset"}, artifacts=[Path(out), Path(per_image)],
                              data=Path(data), model_files=paths)
    return {"models": list(result.summary), "n_images": len(result.ids), "mlflow_run_id": run_id,
            "psnr": {m: round(s["psnr"], 3) for m, s in result.summary.items()}}


main = command(run)
if __name__ == "__main__":
    raise SystemExit(main())
