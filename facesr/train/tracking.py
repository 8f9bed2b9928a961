"""MLflow tracking of a stage: one parent run per invocation, one nested run per trial.

Ray Tune's MLflow integration (``MLflowLoggerCallback`` / ``setup_mlflow``) creates top-level runs
from the trial processes: the parent run lives in the driver's fluent run stack, which a Ray worker
process does not share, so ``nested=True`` there has nothing to nest under (ray-project/ray#19978).
Here the driver creates the parent run and passes its id in the trial config; each trial opens its
own run with ``mlflow.start_run(parent_run_id=...)`` (explicit, process-independent). A retried or
resumed trial reopens the run it created before (its id is kept in the trial workdir), so a retry
does not add a second nested run. A trial given its `data` folder logs it as the run's "training"
dataset input (facesr.tracking.log_dataset).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path

from facesr.fileio import atomic_write_text
from facesr.tracking import flat_params, log_dataset, set_experiment
from facesr.train.config import Trial

RUN_FILE = "mlflow_run.json"


class TrialTracker:
    """The nested MLflow run of one trial; reopened (not duplicated) when the trial resumes."""

    def __init__(self, *, uri: str, experiment: str, parent_run_id: str, run_name: str,
                 trial: Trial, tags: Mapping[str, str], workdir: Path, data: str | Path | None = None):
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
            # the loop keys at the top, beside variant and model: every trial of a stage has the same names
            mlflow.log_params(flat_params({"variant": trial.variant, "model": trial.model,
                                           "model_args": trial.model_args, **dataclasses.asdict(trial.loop)}))
            if data is not None:
                # the identity's digest of the same folder (tags "data_sha256"): not hashed twice
                log_dataset(data, "training", split="train", digest=tags.get("data_sha256"))
            atomic_write_text(run_file, json.dumps({"run_id": self.run.info.run_id, "parent_run_id": parent_run_id}))
        self.run_id = self.run.info.run_id

    def replay(self, history: list[dict[str, float]]) -> None:
        """A trial resumed under a new parent run logs the curve it had already trained."""
        if not self.resumed:
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


def mark_failed(uri: str, workdir: Path) -> None:
    """Close the MLflow run of a trial that died without closing it (kill -9, a lost node) as FAILED."""
    import mlflow

    run_file = workdir / RUN_FILE
    if not run_file.is_file():
        return
    client = mlflow.MlflowClient(uri)
    run_id = json.loads(run_file.read_text())["run_id"]
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, "FAILED")

