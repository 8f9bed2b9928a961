"""MLflow conventions every stage's runs share: the tracking URI, the experiment, the tags, the params.

Training (facesr.train.tracking) and evaluation log through these, so their runs sit side by side
in one experiment with the same tag names and compare in the MLflow UI. Every run logs the prepared
data it read as an MLflow dataset input (`log_dataset`), so the runs table's Datasets column says
which data a run saw, and the experiment is marked as a model-training one (`EXPERIMENT_KIND_TAG`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# MLflow 3's UI opens an experiment by its kind: "custom_model_development" is the runs table, no kind
# (or a GenAI one) the GenAI overview. The key and value are the UI's (its ExperimentKind enum, read
# from the tag "mlflow.experimentKind"); MLflow's Python API has no constant for them.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
# MLflow caps a dataset digest at 36 characters; the full sha256 goes in the input's tags
DATASET_DIGEST_CHARS = 16


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


def run_tags(stage: str, params: Mapping[str, Any], profile: str | None) -> dict[str, str]:
    """The tags every run of the project carries, so runs compare side by side; `profile` is
    params.yaml's `profile:` (facesr.config.RunContext), "unset" when None."""
    return {
        "git_commit": git_commit(),
        "dvc_stage": stage,
        "params_hash": params_hash(params),
        "profile": profile or "unset",
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
    if EXPERIMENT_KIND_TAG not in exp.tags:  # a kind someone chose in the UI is theirs to keep
        mlflow.MlflowClient(uri).set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    return exp.experiment_id


def dataset_name(data: str | Path) -> str:
    """The name a prepared-data folder goes by in MLflow: its path as dvc.yaml writes it (relative
    to the nearest folder above it holding a dvc.yaml), else its absolute path. Not relative to the
    working directory: a Ray trial runs in a folder of its own, and must name the data as the
    driver and the evaluate stage do."""
    path = Path(data).resolve()
    for parent in path.parents:
        if (parent / "dvc.yaml").is_file():
            return path.relative_to(parent).as_posix()
    return path.as_posix()


def data_dataset(data: str | Path, digest: str | None = None):
    """The prepared data at `data` (the downscale stage's folder) as an `mlflow.data` dataset.

    A metadata-only dataset: its source is the folder's manifest.json, its digest the first
    characters of the folder's digest (`facesr.provenance.tree_digest`, the `data` part of a run
    identity; pass it as `digest` when known), its schema the arrays of the train split. Nothing
    of the data is copied into MLflow.
    """
    import numpy as np
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import Schema, TensorSpec

    from facesr.data import read_manifest
    from facesr.provenance import tree_digest

    data = Path(data)
    manifest = read_manifest(data)
    specs = []
    for array in sorted((data / "train").glob("*.npy")):
        a = np.load(array, mmap_mode="r")
        specs.append(TensorSpec(a.dtype, (-1, *a.shape[1:]), name=array.stem))
    full = digest or tree_digest(data)
    with warnings.catch_warnings():
        # MLflow registers its local-file source twice (schemes "" and "file"): both are the same class
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        source = resolve_dataset_source(str((data / "manifest.json").resolve()))
    dataset = MetaDataset(source, name=dataset_name(data), digest=full[:DATASET_DIGEST_CHARS],
                          schema=Schema(specs) if specs else None)
    return dataset, full, manifest


def log_dataset(data: str | Path, context: str, *, split: str | None = None, digest: str | None = None) -> str:
    """Log the prepared data at `data` as a dataset input of the active run; returns its full digest.

    `context` is MLflow's input context ("training", "testing"); `split` names the part of the
    data the run reads (the input tags say which, and how many faces it holds).
    """
    import mlflow

    dataset, full, manifest = data_dataset(data, digest)
    tags = {"data_sha256": full, "splits": json.dumps(manifest.get("splits", {}), sort_keys=True)}
    if split is not None:
        tags |= {"split": split, "faces": str(manifest.get("splits", {}).get(split, ""))}
    mlflow.log_input(dataset, context=context, tags=tags)
    return full
