"""Ray Tune trials of a training stage: one trainable per Trial, retries, collection of the results.

Each trial trains in its own workdir ``<workdir>/<variant>-<fingerprint>``, named by its run
identity, so a retried trial or the whole stage started again resumes from that trial's
checkpoints, and a trial of other data, code, params or init never sees them. When the trial's
workdir is not on this node (a cluster retry on another node) it restores from the Ray checkpoint
it last reported.

A trial of `resources.workers_per_trial` N > 1 is a Ray Train `TorchTrainer` of N workers (DDP,
gloo on CPU, nccl on CUDA) started by its Tune trial (`_train_workers`), so several such trials
still run side by side in the sweep. The trial's files stay the source of truth: rank 0 resumes
from them (or from the Ray Train checkpoint it last reported) and every rank loads what it chose,
rank 0 writes the checkpoints, logs to the trial's one MLflow run and exports; a killed worker makes
Ray Train restart the worker group (FailureConfig(max_failures)), which resumes from the last
checkpoint. Each rank writes `workers/rank<r>.json` (its pid and node) in the trial's workdir.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facesr.fileio import atomic_open
from facesr.services import init_ray
from facesr.train.checkpoint import FROM_RAY, LAST, RunIdentity
from facesr.train.config import StageConfig, Trial, trial_from_dict
from facesr.train.tracking import TrialTracker, mark_failed

if TYPE_CHECKING:  # torch loads inside the trials, not when the stage imports this module
    from facesr.train.distributed import Distributed

log = logging.getLogger(__name__)


class TrainStageError(RuntimeError):
    """Some trials failed after their retries; the ones that finished were exported first."""


@dataclass(frozen=True)
class TrialResult:
    name: str
    variant: str
    fingerprint: str
    error: str | None = None
    mlflow_run_id: str | None = None
    metrics: dict[str, float] | None = None
    step: int = 0
    resumed_from: int = 0
    lpips_skipped: str | None = None
    train_s: float = 0.0
    node_id: str | None = None
    files: Path | None = None  # generator.pt and curves.csv, collected from the trial's final checkpoint

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "files"}


def trial_name(trial: Trial, identity: RunIdentity) -> str:
    return f"{trial.variant}-{identity.fingerprint[:12]}"


@dataclass(frozen=True)
class _Reporter:
    """Where a training process reports: Ray Tune (the process of a 1-worker trial) or Ray Train (each
    worker of an N-worker trial, whose run reports to Tune once it ends). The two APIs have one shape."""

    report: Callable[..., None]
    checkpoint_type: Any
    get_checkpoint: Callable[[], Any]

    @contextlib.contextmanager
    def reporting(self, metrics: dict[str, Any]) -> Iterator[Path]:
        """A folder to put a checkpoint's files in; reported with `metrics` when the context ends."""
        with tempfile.TemporaryDirectory() as d:
            yield Path(d)
            self.report(metrics, checkpoint=self.checkpoint_type.from_directory(d))

    def restore(self, workdir: Path) -> None:
        """Copy the checkpoint Ray kept for this trial to <workdir>/ray.pt (atomically), if there is one."""
        ray_ckpt = self.get_checkpoint()
        if ray_ckpt is None:
            return
        with ray_ckpt.as_directory() as d:
            if (Path(d) / LAST).is_file():
                with open(Path(d) / LAST, "rb") as src, atomic_open(workdir / FROM_RAY, "wb") as dst:
                    shutil.copyfileobj(src, dst)


def _trainable(config: dict[str, Any]) -> None:
    """Body of every Ray trial: one training process, or the driver of a multi-worker trial; indexes only
    its config keys."""
    import torch
    from ray import tune

    if config["workers"] > 1:
        _train_workers(config)
        return
    torch.set_num_threads(config["cpus"])
    _train_process(config, _Reporter(tune.report, tune.Checkpoint, tune.get_checkpoint), dist=None)


def _train_process(config: dict[str, Any], reporter: _Reporter, dist: Distributed | None) -> None:
    """One training process of a trial: the whole trial (`dist` None) or rank r of N. The leader (the
    one process, or rank 0) restores, tracks the trial's MLflow run, reports its checkpoints and, at
    the end, its files and metrics; the other ranks report at the same steps with no checkpoint (Ray
    Train's report is a barrier)."""
    import ray

    from facesr.train.loop import train

    trial, identity = trial_from_dict(config["point"]["trial"]), RunIdentity(**config["point"]["identity"])
    name = trial_name(trial, identity)
    workdir = Path(config["workdir"]) / name
    workdir.mkdir(parents=True, exist_ok=True)
    # Tune's node_ip is the same for every node of a one-host cluster; the node id is not
    node_id = ray.get_runtime_context().get_node_id()
    if dist is not None:
        with atomic_open(workdir / WORKERS_DIR / f"rank{dist.rank}.json", "w") as fh:
            json.dump({"rank": dist.rank, "pid": os.getpid(), "node_id": node_id}, fh)
    tracker = None
    if dist is None or dist.leader:
        reporter.restore(workdir)
        tracker = TrialTracker(uri=config["mlflow_uri"], experiment=config["experiment"],
                               parent_run_id=config["parent_run_id"], run_name=name, trial=trial,
                               tags={**config["tags"], **identity.tags()}, workdir=workdir, data=config["data"])
    latest: dict[str, float] = {}

    def on_event(kind: str, step: int, payload: Any) -> None:
        if kind == "checkpoint":
            if payload is None:  # a rank > 0
                reporter.report({"step": step})
                return
            with reporter.reporting({"step": step, **latest}) as d:
                shutil.copy2(payload, d / LAST)
        elif tracker is None:
            return
        elif kind in ("train", "val"):
            values = {k: v for k, v in payload.items() if k != "step"}
            latest.update(values)
            tracker.log_metrics(step, values)
        elif kind == "resumed":
            tracker.replay(payload)
        elif kind == "sample":
            tracker.log_artifact(payload, "samples")

    try:
        result = train(trial, data_root=config["data"], workdir=workdir, identity=identity,
                       init=config["init"] or None, on_event=on_event, dist=dist)
        if tracker is not None:
            tracker.log_artifact(result.curves)
    except BaseException:
        if tracker is not None:
            tracker.end("FAILED")
        raise
    if tracker is None:
        reporter.report({"step": result.step})
        return
    tracker.end("FINISHED")
    done = TrialResult(name=name, variant=trial.variant, fingerprint=identity.fingerprint,
                       mlflow_run_id=tracker.run_id, metrics=result.metrics, step=result.step,
                       resumed_from=result.resumed_from, lpips_skipped=result.lpips_skipped,
                       train_s=round(result.train_s, 1), node_id=node_id)
    with reporter.reporting({"step": result.step, **latest, **result.metrics, "done": 1}) as d:
        shutil.copy2(result.generator, d / "generator.pt")
        shutil.copy2(result.curves, d / "curves.csv")
        (d / "trial.json").write_text(json.dumps(done.summary()))


# ------------------------------------------------------------------------------ multi-worker trials

WORKERS_DIR = "workers"  # <trial workdir>/workers/rank<r>.json: each worker's pid and node
DRIVER_MEMORY = 256 * 1024**2  # bytes of Ray's memory resource a multi-worker trial's driver asks for


def _train_workers(config: dict[str, Any]) -> None:
    """A Tune trial of N > 1 workers: one Ray Train run (`_worker` on each), then the trial's final
    report to Tune with the files rank 0 reported last."""
    from ray import train, tune
    from ray.train.torch import TorchConfig, TorchTrainer

    trial, identity = trial_from_dict(config["point"]["trial"]), RunIdentity(**config["point"]["identity"])
    name = trial_name(trial, identity)
    gpus = config["gpus"]
    trainer = TorchTrainer(
        _worker, train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if gpus else "gloo"),
        scaling_config=train.ScalingConfig(num_workers=config["workers"], use_gpu=bool(gpus),
                                           resources_per_worker={"CPU": config["cpus"], **({"GPU": gpus} if gpus else {})}),
        # the same name and storage on a Tune retry: Ray Train finds the checkpoints it kept
        run_config=train.RunConfig(name=name, storage_path=str(Path(config["workdir"]) / "ray" / "workers"),
                                   failure_config=train.FailureConfig(max_failures=config["max_failures"]),
                                   checkpoint_config=train.CheckpointConfig(num_to_keep=2)))
    result = trainer.fit()
    with result.checkpoint.as_directory() as d:
        tune.report({k: v for k, v in result.metrics.items() if isinstance(v, (int, float))},
                    checkpoint=tune.Checkpoint.from_directory(d))


def _worker(config: dict[str, Any]) -> None:
    """Body of each Ray Train worker of a multi-worker trial: the training process of rank r of N."""
    import ray.train
    import ray.train.torch
    import torch

    from facesr.device import resolve_device
    from facesr.train.distributed import Distributed

    torch.set_num_threads(config["cpus"])
    trial = trial_from_dict(config["point"]["trial"])
    context = ray.train.get_context()
    # Ray Train picks this worker's GPU (its local rank); a loop set to cpu stays on the CPU
    cuda = resolve_device(trial.loop.device, setting="loop.device") == "cuda"
    dist = Distributed(rank=context.get_world_rank(), world_size=context.get_world_size(),
                       device=ray.train.torch.get_device() if cuda else torch.device("cpu"))
    _train_process(config, _Reporter(ray.train.report, ray.train.Checkpoint, ray.train.get_checkpoint), dist=dist)


# --------------------------------------------------------------------------------------- driver

def fit_cpus(cpus: int, stage: str) -> int:
    """`cpus_per_trial`, lowered to the CPUs of the largest node Ray has.

    Tune waits forever for a trial no node can hold (only the autoscaler logs "No available node
    types can fulfill resource request"): `infra/local/up`'s nodes have 1 CPU each, a laptop may
    have fewer cores than the profile asks for. A cluster with no CPU node yet (a head of 0 CPUs
    whose workers the autoscaler adds) keeps the request as it is.
    """
    import ray

    largest = max((int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=0)
    if 0 < largest < cpus:
        log.warning("%s.resources.cpus_per_trial is %d but the largest Ray node has %d CPU(s): each trial asks "
                    "for %d", stage, cpus, largest, largest)
        return largest
    return cpus


def run_trials(config: StageConfig, identities: list[RunIdentity], *, data: Path, workdir: Path, into: Path,
               init: Path | None, mlflow_uri: str, parent_run_id: str, tags: dict[str, str]) -> list[TrialResult]:
    """Run every trial under Ray Tune; one TrialResult per trial, its files collected under `into`."""
    import ray
    from ray import tune

    started = init_ray(num_cpus=os.cpu_count())
    try:
        cpus = fit_cpus(config.resources.cpus_per_trial, config.stage)
        # Ask the cluster, not this process: a CPU-only driver may steer a cluster of GPU nodes.
        gpus = config.resources.gpus_per_trial if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        workers = config.resources.workers_per_trial
        points = [{"trial": t.to_dict(), "identity": vars(i)} for t, i in zip(config.trials, identities)]
        # A trial of N > 1 workers is only their driver: the Ray Train run asks for N x (cpus, gpus)
        # itself, and waits (retrying its start) until the cluster has them. The driver holds no
        # CPU (a node's CPUs stay whole for the workers), only memory: Tune refuses an empty request.
        trial_resources = {"cpu": cpus, "gpu": gpus} if workers == 1 else {"cpu": 0, "gpu": 0, "memory": DRIVER_MEMORY}
        tuner = tune.Tuner(
            tune.with_resources(_trainable, trial_resources),
            param_space={"point": tune.grid_search(points), "cpus": cpus, "gpus": gpus, "workers": workers,
                         "max_failures": config.max_failures, "data": str(data.resolve()),
                         "workdir": str(workdir.resolve()), "init": str(init.resolve()) if init else "", "mlflow_uri": mlflow_uri,
                         "experiment": config.context.mlflow.experiment, "parent_run_id": parent_run_id, "tags": tags},
            # no metric here: intermediate reports (at checkpoints) need not carry validation scores;
            # the best trial per variant is chosen from the final reports (best_per_variant)
            run_config=tune.RunConfig(
                name=config.stage, storage_path=str((workdir / "ray").resolve()), verbose=0,
                failure_config=tune.FailureConfig(max_failures=config.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
        )
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    results = []
    for result in grid:
        point = result.config["point"]
        trial, identity = trial_from_dict(point["trial"]), RunIdentity(**point["identity"])
        name = trial_name(trial, identity)
        if result.error is not None or result.checkpoint is None or not result.metrics.get("done"):
            mark_failed(mlflow_uri, workdir / name)
            results.append(TrialResult(name=name, variant=trial.variant, fingerprint=identity.fingerprint,
                                       error=str(result.error or "trial ended without its final report")))
            continue
        keep = into / name
        result.checkpoint.to_directory(str(keep))
        fields = json.loads((keep / "trial.json").read_text())
        results.append(TrialResult(**fields, files=keep))
    return results


def best_per_variant(results: list[TrialResult], metric: str, mode: str) -> dict[str, TrialResult]:
    from facesr.config import ParamsError

    best: dict[str, TrialResult] = {}
    sign = 1.0 if mode == "max" else -1.0
    for r in results:
        if r.error is not None:
            continue
        if metric not in r.metrics:
            raise ParamsError(f"select.metric: '{metric}' is not among the validation metrics "
                              f"({', '.join(sorted(r.metrics))})")
        if r.variant not in best or sign * r.metrics[metric] > sign * best[r.variant].metrics[metric]:
            best[r.variant] = r
    return best
