"""MLflow conventions every stage's runs share: the tracking URI, the experiment, the tags, the params.

Training (facesr.train.tracking) and evaluation log through these, so their runs sit side by side
in one experiment with the same tag names and compare in the MLflow UI.
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
                             cwd=Path(__file__).resolve().parents[1])
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
