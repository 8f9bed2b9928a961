"""What the `train` and `train_gan` stages share: params -> trials -> Ray -> exports + MLflow.

``run_stage`` opens the MLflow parent run, runs every trial (variants x search grid) under Ray
Tune, exports the best trial of each variant to ``<models>/<variant>.pt`` (self-describing, via
``save_generator``) and its curves to ``<curves>/<variant>.csv``, writes the metrics JSON, logs
each exported generator as an MLflow model in its trial's run and registers it. Outputs are
written to temp paths beside the targets and renamed at the end; when some trials fail for good,
the variants that finished are still exported before the stage raises.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from facesr.config import ParamsError, require
from facesr.fileio import atomic_write_text, replace_dir
from facesr.services import check_mlflow
from facesr.train.tracking import flat_params, log_generator, run_tags, set_experiment, tracking_uri
from facesr.train.trials import TrainStageError, best_per_variant, expand_grid, run_trials, trial_params

SECTION_KEYS = ("variants", "search", "select", "loop", "resources", "max_failures", "smoke_test")


def build_trials(section: dict[str, Any], *, where: str, smoke_test: bool) -> list[dict[str, Any]]:
    require(section, *SECTION_KEYS, where=where)
    base = dict(section["loop"])
    smoke = dict(section["smoke_test"]) if smoke_test else {}
    unknown = sorted(set(smoke) - set(base))
    if unknown:
        raise ParamsError(f"{where}.smoke_test: {', '.join(unknown)} not in {where}.loop")
    variants = section["variants"]
    if not isinstance(variants, dict) or not variants:
        raise ParamsError(f"{where}.variants: expected a mapping of variant name -> settings")
    for name, spec in variants.items():
        require(spec, "registered_name", where=f"{where}.variants.{name}")
    # the smoke-test sizes win over a variant's own loop overrides (its longer equal-wall-clock steps)
    return [trial_params(base, name, spec, point) | smoke
            for name, spec in variants.items() for point in expand_grid(section["search"])]


def run_stage(section: dict[str, Any], *, stage: str, loop: str, data: str | Path, models: str | Path,
              metrics: str | Path, curves: str | Path, workdir: str | Path, smoke_test: bool = False,
              mlflow_params: dict[str, Any] | None = None, init: str | Path | None = None) -> dict[str, Any]:
    import mlflow

    data, models, metrics, curves, workdir = map(Path, (data, models, metrics, curves, workdir))
    if not (data / "manifest.json").is_file():
        raise ParamsError(f"{data}: no manifest.json; expected the downscale stage's prepared data")
    if init is not None and not Path(init).is_file():
        raise ParamsError(f"{init}: the Method 1 generator to start the GAN from does not exist; run the train stage")
    trials = build_trials(section, where=stage, smoke_test=smoke_test)
    select = section["select"]
    mlflow_params = mlflow_params or {}
    uri = tracking_uri(mlflow_params)
    # A tracking server that is down must stop the stage before any training time is spent.
    check_mlflow(uri)
    experiment = str(mlflow_params.get("experiment", "facesr"))
    tags = run_tags(stage, section, mlflow_params)
    set_experiment(uri, experiment)
    os.environ.pop("MLFLOW_RUN_ID", None)

    with mlflow.start_run(run_name=stage + ("-smoke" if smoke_test else ""), tags=tags) as parent:
        mlflow.log_params(flat_params({k: section[k] for k in ("variants", "search", "select", "loop")}))
        mlflow.set_tag("smoke_test", str(smoke_test))
        summaries = run_trials(
            stage=stage, loop=loop, trials=trials, data=data, workdir=workdir,
            resources=section["resources"], max_failures=section["max_failures"],
            mlflow_uri=uri, experiment=experiment,
            parent_run_id=parent.info.run_id, tags=tags, init=Path(init) if init else None)
        best = best_per_variant(summaries, select["metric"], select["mode"])

        models.parent.mkdir(parents=True, exist_ok=True)
        curves.parent.mkdir(parents=True, exist_ok=True)
        tmp_models = Path(tempfile.mkdtemp(prefix=f".{models.name}.", dir=models.parent))
        tmp_curves = Path(tempfile.mkdtemp(prefix=f".{curves.name}.", dir=curves.parent))
        for variant, s in best.items():
            shutil.copy2(Path(s["files"]) / "generator.pt", tmp_models / f"{variant}.pt")
            shutil.copy2(Path(s["files"]) / "curves.csv", tmp_curves / f"{variant}.csv")
        replace_dir(tmp_models, models)
        replace_dir(tmp_curves, curves)

        summary: dict[str, Any] = {"stage": stage, "smoke_test": smoke_test, "select": select,
                                   "mlflow": {"tracking_uri": uri, "experiment": experiment,
                                              "parent_run_id": parent.info.run_id},
                                   "variants": {}, "trials": []}
        for variant, s in best.items():
            name = section["variants"][variant]["registered_name"]
            version = log_generator(uri, s["mlflow_run_id"], models / f"{variant}.pt", name)
            summary["variants"][variant] = {"trial": s["name"], "metrics": s["metrics"], "step": s["step"],
                                            "train_s": s["train_s"],
                                            "model": str(models / f"{variant}.pt"),
                                            "registered_model": f"models:/{name}/{version}",
                                            "lpips_skipped": s["lpips_skipped"]}
            mlflow.log_metrics({f"{variant}.{k}": float(v) for k, v in s["metrics"].items()})
        for s in summaries:
            summary["trials"].append({k: s.get(k) for k in ("name", "variant", "metrics", "error", "mlflow_run_id", "node_id", "train_s")})
            if s.get("files"):
                shutil.rmtree(s["files"], ignore_errors=True)
        metrics.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(metrics, json.dumps(summary, indent=2, sort_keys=True) + "\n")
        mlflow.log_artifact(str(metrics))

        failed = [s for s in summaries if "error" in s]
        if failed:
            mlflow.set_tag("failed_trials", ", ".join(str(s["name"]) for s in failed))
            reasons = "; ".join(f"{s['name']}: {s['error'][:300]}" for s in failed)
            raise TrainStageError(
                f"{stage}: {len(failed)} of {len(summaries)} trials failed after {section['max_failures']} "
                f"retries ({reasons}); finished variants were exported to {models}")
    return summary
