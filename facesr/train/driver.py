"""What the `train` and `train_gan` stages share: config -> identities -> Ray trials -> exports + MLflow.

``run_stage`` computes each trial's run identity (params, data digest, init digest, code digest),
opens the MLflow parent run, runs every trial under Ray Tune, exports the best trial of each
variant to ``<models>/<variant>.pt`` and its curves to ``<curves>/<variant>.csv``, every finished
trial's generator to ``<models>/trials/<variant>/<name>.pt`` (the same format; `name` from its
search point, e.g. ``seed1``, so evaluate can score each seed), writes the metrics JSON (a
`facesr.results.TrainSummary`: every identity, and per variant its trials and which one is the
export), and logs and registers each exported generator. Outputs are written beside the targets and
renamed at the end; when some trials fail for good, the variants that finished are still exported
before the stage raises.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from facesr.config import ParamsError
from facesr.fileio import replace_dir, sha256_file, sweep_stale, temp_dir_beside
from facesr.models.registry import TRIALS_DIR
from facesr.provenance import code_digest, tree_digest
from facesr.results import (
    TrainIdentity,
    TrainSelection,
    TrainSummary,
    TrainTracking,
    TrialEntry,
    VariantEntry,
    VariantTrial,
)
from facesr.services import check_mlflow
from facesr.tracking import flat_params, log_dataset, run_tags, set_experiment, tracking_uri
from facesr.train.checkpoint import RunIdentity
from facesr.train.config import StageConfig
from facesr.train.trials import TrainStageError, TrialResult, best_per_variant, run_trials, trial_name

# the loop's import closure is the code a trained model depends on (facesr.provenance)
LOOP_MODULE = "facesr.train.loop"


def shared_identity(data: Path, init: str | Path | None) -> dict[str, str]:
    """The parts of a run identity every trial of a stage shares: data, init and code digests."""
    return {"data": tree_digest(data), "init": sha256_file(init) if init else "", "code": code_digest([LOOP_MODULE])}



def trial_entries(config: StageConfig, identities: list[RunIdentity], results: list[TrialResult],
                  best: dict[str, TrialResult]) -> dict[str, list[VariantTrial]]:
    """Per variant, its trials as the metrics JSON lists them: name, seed, search point, file (under
    <models>; None for a failed trial), val_psnr, and whether it is the exported <variant>.pt."""
    by_run = {r.name: r for r in results}
    out: dict[str, list[VariantTrial]] = {}
    for trial, identity, point, label in zip(config.trials, identities, config.points, config.labels):
        r = by_run.get(trial_name(trial, identity))
        done = r is not None and r.error is None
        out.setdefault(trial.variant, []).append(VariantTrial(
            name=label, seed=trial.loop.seed, point=point, run=trial_name(trial, identity),
            file=f"{TRIALS_DIR}/{trial.variant}/{label}.pt" if done else None,
            val_psnr=r.metrics.get("val_psnr") if done and r.metrics else None,
            exported=done and best.get(trial.variant) is r))
    return out


def trial_entry(r: TrialResult) -> TrialEntry:
    """A trial's entry in the metrics JSON's `trials`."""
    return TrialEntry(name=r.name, variant=r.variant, fingerprint=r.fingerprint, error=r.error,
                      mlflow_run_id=r.mlflow_run_id, metrics=r.metrics, step=r.step, resumed_from=r.resumed_from,
                      lpips_skipped=r.lpips_skipped, train_s=r.train_s, node_id=r.node_id)


def run_stage(config: StageConfig, *, data: str | Path, models: str | Path, metrics: str | Path,
              curves: str | Path, workdir: str | Path, smoke_test: bool = False,
              init: str | Path | None = None) -> dict[str, Any]:
    import mlflow

    from facesr.mlflow_model import log_generator  # imports mlflow: only once a stage runs

    data, models, metrics, curves, workdir = map(Path, (data, models, metrics, curves, workdir))
    if not (data / "manifest.json").is_file():
        raise ParamsError(f"{data}: no manifest.json; expected the downscale stage's prepared data")
    if init is not None and not Path(init).is_file():
        raise ParamsError(f"{init}: the Method 1 generator to start the GAN from does not exist; run the train stage")
    uri = tracking_uri(vars(config.context.mlflow))
    # A tracking server that is down must stop the stage before any training time is spent.
    check_mlflow(uri)
    for target in (models, curves, metrics, workdir / "collect"):
        sweep_stale(target)  # what a killed run of this stage left beside its outputs
    shared = shared_identity(data, init)
    identities = [RunIdentity(params=t.params_hash, **shared) for t in config.trials]
    tags = run_tags(config.stage, config.section, config.context.profile)
    set_experiment(uri, config.context.mlflow.experiment)
    os.environ.pop("MLFLOW_RUN_ID", None)

    collect = temp_dir_beside(workdir / "collect")
    try:
        with mlflow.start_run(run_name=config.stage + ("-smoke" if smoke_test else ""), tags=tags) as parent:
            mlflow.log_params(flat_params({k: config.section[k] for k in ("variants", "search", "select", "loop")}))
            mlflow.set_tags({"smoke_test": str(smoke_test),
                             **{k: v for k, v in identities[0].tags().items() if k != "run_fingerprint"}})
            log_dataset(data, "training", split="train", digest=shared["data"])
            results = run_trials(config, identities, data=data, workdir=workdir, into=collect, init=init and Path(init),
                                 mlflow_uri=uri, parent_run_id=parent.info.run_id, tags=tags)
            best = best_per_variant(results, config.select.metric, config.select.mode)
            per_variant = trial_entries(config, identities, results, best)
            tmp_models, tmp_curves = temp_dir_beside(models), temp_dir_beside(curves)
            for variant, r in best.items():
                shutil.copy2(r.files / "generator.pt", tmp_models / f"{variant}.pt")
                shutil.copy2(r.files / "curves.csv", tmp_curves / f"{variant}.csv")
            # every finished trial, so each seed can be scored (always: a small model is KBs to MBs)
            by_run = {r.name: r for r in results}
            for entry in (t for trials in per_variant.values() for t in trials if t.file):
                (tmp_models / entry.file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(by_run[entry.run].files / "generator.pt", tmp_models / entry.file)
            replace_dir(tmp_models, models)
            replace_dir(tmp_curves, curves)

            variants: dict[str, VariantEntry] = {}
            for variant, r in best.items():
                name = config.variants[variant].registered_name
                version = log_generator(uri, r.mlflow_run_id, models / f"{variant}.pt", name)
                variants[variant] = VariantEntry(
                    trial=r.name, fingerprint=r.fingerprint, metrics=r.metrics, step=r.step,
                    resumed_from=r.resumed_from, train_s=r.train_s, model=str(models / f"{variant}.pt"),
                    registered_model=f"models:/{name}/{version}", lpips_skipped=r.lpips_skipped,
                    exported_trial=next(t.name for t in per_variant[variant] if t.exported),
                    trials=tuple(per_variant[variant]))
                mlflow.log_metrics({f"{variant}.{k}": float(v) for k, v in r.metrics.items()})
            summary = TrainSummary(
                stage=config.stage, smoke_test=smoke_test,
                select=TrainSelection(metric=config.select.metric, mode=config.select.mode),
                identity=TrainIdentity(**shared),
                mlflow=TrainTracking(tracking_uri=uri, experiment=config.context.mlflow.experiment,
                                     parent_run_id=parent.info.run_id),
                variants=variants, trials=tuple(trial_entry(r) for r in results))
            summary.write(metrics)
            mlflow.log_artifact(str(metrics))

            if failed := [r for r in results if r.error is not None]:
                mlflow.set_tag("failed_trials", ", ".join(r.name for r in failed))
                reasons = "; ".join(f"{r.name}: {r.error[:300]}" for r in failed)
                raise TrainStageError(
                    f"{config.stage}: {len(failed)} of {len(results)} trials failed after {config.max_failures} "
                    f"retries ({reasons}); finished variants were exported to {models}")
    finally:
        shutil.rmtree(collect, ignore_errors=True)
    return summary.to_dict()

