"""MLflow tracking of a stage: one parent run per invocation, one nested run per trial.

Ray Tune's MLflow integration (``MLflowLoggerCallback`` / ``setup_mlflow``) creates top-level runs
from the trial processes: the parent run lives in the driver's fluent run stack, which a Ray worker
process does not share, so ``nested=True`` there has nothing to nest under (ray-project/ray#19978).
Here the driver creates the parent run and passes its id in the trial config; each trial opens its
own run with ``mlflow.start_run(parent_run_id=...)`` (explicit, process-independent). A retried or
resumed trial reopens the run it created before (its id is kept in the trial workdir), so a retry
does not add a second nested run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RUN_FILE = "mlflow_run.json"


def tracking_uri(mlflow_params: Mapping[str, Any] | None) -> str:
    """$MLFLOW_TRACKING_URI, else params `mlflow.tracking_uri`, else sqlite:///mlflow.db; absolute.

    Ray runs each trial in its own working directory, so a relative sqlite path is made absolute
    here, against the driver's working directory.
    """
    from facesr.services import mlflow_tracking_uri

    uri = mlflow_tracking_uri(dict(mlflow_params or {}))
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    elif "://" not in uri:
        uri = str(Path(uri).resolve())
    return uri


def params_hash(params: Mapping[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parents[2])
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def hardware() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"cpu:{platform.machine()} {os.cpu_count()} cores"


def run_tags(stage: str, params: Mapping[str, Any], mlflow_params: Mapping[str, Any] | None) -> dict[str, str]:
    """The tags every run of the project carries, so runs compare side by side."""
    return {
        "git_commit": git_commit(),
        "dvc_stage": stage,
        "params_hash": params_hash(params),
        "profile": str((mlflow_params or {}).get("profile", "unset")),
        "hardware": hardware(),
    }


def flat_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Top-level keys only, nested values as JSON: every run of a stage has the same param names."""
    return {k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v) for k, v in params.items()}


def set_experiment(uri: str, experiment: str) -> str:
    """Select (creating if needed) the experiment; with a sqlite store, artifacts live beside the DB.

    MLflow's default artifact root is ./mlruns of whatever the working directory is, which under
    Ray is a trial folder; anchoring it at the database keeps a store and its artifacts together.
    """
    import mlflow

    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None and uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        try:
            mlflow.create_experiment(experiment, artifact_location=(db.parent / "mlartifacts").as_uri())
        except mlflow.exceptions.MlflowException:
            pass  # created meanwhile by a concurrent trial
    exp = mlflow.set_experiment(experiment)
    return exp.experiment_id


class TrialTracker:
    """The nested MLflow run of one trial; reopened (not duplicated) when the trial resumes."""

    def __init__(self, *, uri: str, experiment: str, parent_run_id: str, run_name: str,
                 params: Mapping[str, Any], tags: Mapping[str, str], workdir: Path):
        import mlflow

        self.mlflow = mlflow
        # an inherited MLFLOW_RUN_ID would make start_run resume that run instead of nesting (mlflow#15713)
        os.environ.pop("MLFLOW_RUN_ID", None)
        set_experiment(uri, experiment)
        run_file = workdir / RUN_FILE
        known = json.loads(run_file.read_text()) if run_file.is_file() else {}
        self.resumed = known.get("parent_run_id") == parent_run_id
        if self.resumed:
            self.run = mlflow.start_run(run_id=known["run_id"])
        else:
            self.run = mlflow.start_run(run_name=run_name, parent_run_id=parent_run_id, tags=dict(tags))
            mlflow.log_params(flat_params(params))
            from facesr.fileio import atomic_write_text

            atomic_write_text(run_file, json.dumps({"run_id": self.run.info.run_id, "parent_run_id": parent_run_id}))
        self.run_id = self.run.info.run_id

    def replay(self, history: list[dict[str, float]]) -> None:
        """A trial resumed under a new parent run logs the curve it had already trained."""
        for row in history:
            self.log_metrics(int(row["step"]), {k: v for k, v in row.items() if k != "step"})

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        clean = {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}
        if clean:
            self.mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        self.mlflow.end_run(status=status)


def log_generator(uri: str, run_id: str, generator_path: str | Path, registered_name: str) -> str:
    """Log an exported generator file as an MLflow pytorch model in `run_id` and register it.

    Pickle serialisation, not MLflow 3's torch.export default: an exported program is traced at
    the example's batch size, and the model must upscale any batch (STACK.md). Returns the version.
    """
    import mlflow

    from facesr.models import load_generator

    model, meta = load_generator(generator_path)
    mlflow.set_tracking_uri(uri)
    os.environ.pop("MLFLOW_RUN_ID", None)
    # nested=True: the stage's parent run is still active in this process
    with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
        info = mlflow.pytorch.log_model(model, name="model", serialization_format="pickle",
                                        registered_model_name=registered_name,
                                        metadata={"facesr_model": meta["model"],
                                                  "model_args": json.dumps(meta["model_args"], sort_keys=True)})
    return str(info.registered_model_version)
