"""Ray Tune trials of a training stage: variants x search grid, retries, export of the best.

The driver (`run_stage`) opens the MLflow parent run, expands the grid with ``tune.grid_search``,
and runs one trainable per trial with ``tune.with_resources`` (1 GPU per trial where GPUs exist,
CPUs otherwise) and ``FailureConfig(max_failures)``. Each trial trains in its own workdir
``<workdir>/<variant>-<hash of its params>`` so that a retried trial, or the whole stage started
again, resumes from that trial's last checkpoint. When the trial's workdir is not on this node
(a cluster retry on another node) it restores from the Ray checkpoint it last reported.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facesr.config import ParamsError
from facesr.train.checkpoint import LAST
from facesr.train.tracking import TrialTracker, params_hash


class TrainStageError(RuntimeError):
    """Some trials failed after their retries; the ones that finished were exported first."""


# ----------------------------------------------------------------------------------- trial grid

def expand_grid(search: dict[str, list]) -> list[dict[str, Any]]:
    """The cartesian product of the search lists (what tune.grid_search runs), in a stable order."""
    keys = sorted(search)
    for key in keys:
        if not isinstance(search[key], list) or not search[key]:
            raise ParamsError(f"params search.{key}: expected a non-empty list of values")
    return [dict(zip(keys, values)) for values in itertools.product(*(search[k] for k in keys))]


def trial_params(base: dict[str, Any], variant: str, variant_spec: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """One trial's full params: the stage's loop settings, the variant's own `loop` overrides (e.g.
    more steps for an equal-wall-clock baseline), the variant's model, the grid point."""
    overrides = variant_spec.get("loop", {})
    for where, keys in ((f"variants.{variant}.loop", overrides), ("search", point)):
        if not isinstance(keys, dict):
            raise ParamsError(f"params {where}: expected a mapping of training settings")
        unknown = sorted(set(keys) - set(base))
        if unknown:
            raise ParamsError(f"params {where}: {', '.join(unknown)} not a training setting "
                              f"(valid: {', '.join(sorted(base))})")
    params = {**base, **overrides, **point, "variant": variant}
    if "model" in variant_spec:
        params["model"] = variant_spec["model"]
        params["model_args"] = dict(variant_spec["model_args"])
    return params


def trial_name(params: dict[str, Any]) -> str:
    return f"{params['variant']}-{params_hash(params)[:10]}"


# ------------------------------------------------------------------------------------ trainable

LoopFn = Callable[..., dict[str, Any]]


def _trainable(config: dict[str, Any]) -> None:
    """Body of every Ray trial: resume or start, train, report, track; indexes only its config keys."""
    import ray
    import torch
    from ray import tune

    params = config["params"]
    torch.set_num_threads(max(1, int(config["cpus"])))
    workdir = Path(config["workdir"]) / trial_name(params)
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / LAST).exists():
        ray_ckpt = tune.get_checkpoint()
        if ray_ckpt is not None:
            with ray_ckpt.as_directory() as d:
                if (Path(d) / LAST).is_file():
                    shutil.copy2(Path(d) / LAST, workdir / LAST)

    tracker = TrialTracker(uri=config["mlflow_uri"], experiment=config["experiment"],
                           parent_run_id=config["parent_run_id"], run_name=trial_name(params),
                           params=params, tags=config["tags"], workdir=workdir)
    if not tracker.resumed and (workdir / LAST).exists():
        from facesr.train.checkpoint import load_checkpoint

        tracker.replay(load_checkpoint(workdir / LAST)["history"])

    latest: dict[str, float] = {}

    def on_event(kind: str, step: int, payload: Any) -> None:
        if kind in ("train", "val"):
            values = {k: v for k, v in payload.items() if k != "step"}
            latest.update(values)
            tracker.log_metrics(step, values)
        elif kind == "sample":
            tracker.log_artifact(payload, "samples")
        elif kind == "checkpoint":
            with tempfile.TemporaryDirectory() as d:
                shutil.copy2(payload, Path(d) / LAST)
                tune.report({"step": step, **latest}, checkpoint=tune.Checkpoint.from_directory(d))

    loop: LoopFn = _LOOPS[config["loop"]]
    try:
        kwargs = {"init": config["init"]} if config["loop"] == "gan" else {}
        result = loop(params, data_root=config["data"], workdir=workdir, on_event=on_event, **kwargs)
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.log_artifact(result["curves"])
    tracker.end("FINISHED")
    with tempfile.TemporaryDirectory() as d:
        shutil.copy2(result["generator"], Path(d) / "generator.pt")
        shutil.copy2(result["curves"], Path(d) / "curves.csv")
        (Path(d) / "trial.json").write_text(json.dumps({
            "name": trial_name(params), "mlflow_run_id": tracker.run_id, "params": params,
            "metrics": result["metrics"], "step": result["step"], "lpips_skipped": result["lpips_skipped"],
            "train_s": round(result["train_s"], 1),
            # Tune's node_ip is the same for every node of a one-host cluster; the node id is not.
            "node_id": ray.get_runtime_context().get_node_id()}))
        tune.report({"step": result["step"], **latest, **result["metrics"], "done": 1},
                    checkpoint=tune.Checkpoint.from_directory(d))


def _content_loop(*args, **kwargs):
    from facesr.train.loops import train_content

    return train_content(*args, **kwargs)


def _gan_loop(*args, **kwargs):
    from facesr.train.loops import train_gan

    return train_gan(*args, **kwargs)


_LOOPS: dict[str, LoopFn] = {"content": _content_loop, "gan": _gan_loop}


# --------------------------------------------------------------------------------------- driver

def init_ray(num_cpus: int | None = None) -> bool:
    """Connect to $RAY_ADDRESS when set, else start a local Ray; True if this call started it."""
    import ray

    from facesr.services import init_ray as init_ray_service

    if ray.is_initialized():
        return False
    # FACESR_* switches (progress bars, fault-injection drills) reach trials on a cluster too
    runtime_env = {"env_vars": {k: v for k, v in os.environ.items() if k.startswith("FACESR_")}}
    init_ray_service(num_cpus=num_cpus or os.cpu_count(), runtime_env=runtime_env)
    return True


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
        logging.getLogger(__name__).warning(
            "%s.resources.cpus_per_trial is %d but the largest Ray node has %d CPU(s): each trial asks for %d",
            stage, cpus, largest, largest)
        return largest
    return cpus


def run_trials(*, stage: str, loop: str, trials: list[dict[str, Any]], data: Path, workdir: Path,
               resources: dict[str, Any], max_failures: int,
               mlflow_uri: str, experiment: str, parent_run_id: str, tags: dict[str, str],
               init: Path | None = None) -> list[dict[str, Any]]:
    """Run every trial under Ray Tune; one summary dict per trial (its trial.json, or its error)."""
    import ray
    from ray import tune

    started = init_ray()
    try:
        cpus = fit_cpus(int(resources["cpus_per_trial"]), stage)
        # Ask the cluster, not this process: a CPU-only driver may steer a cluster of GPU nodes.
        gpus = int(resources["gpus_per_trial"]) if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        trainable = tune.with_resources(_trainable, {"cpu": cpus, "gpu": gpus})
        param_space = {
            "params": tune.grid_search(trials), "loop": loop, "cpus": cpus,
            "data": str(data.resolve()), "workdir": str(workdir.resolve()),
            "init": str(init.resolve()) if init else "", "mlflow_uri": mlflow_uri,
            "experiment": experiment, "parent_run_id": parent_run_id, "tags": tags,
        }
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            # no metric here: intermediate reports (at checkpoints) need not carry validation
            # scores; the best trial per variant is chosen from the final reports (best_per_variant)
            run_config=tune.RunConfig(
                name=stage, storage_path=str((workdir / "ray").resolve()), verbose=0,
                failure_config=tune.FailureConfig(max_failures=int(max_failures)),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            ),
        )
        grid = tuner.fit()
    finally:
        if started:
            import ray

            ray.shutdown()
    return _collect(grid)


def _collect(grid) -> list[dict[str, Any]]:
    out = []
    for result in grid:
        params = result.config["params"] if result.config else {}
        entry: dict[str, Any] = {"variant": params.get("variant"), "name": trial_name(params) if params else None}
        if result.error is not None or result.checkpoint is None or not result.metrics.get("done"):
            entry["error"] = str(result.error or "trial ended without its final report")
        else:
            keep = Path(tempfile.mkdtemp(prefix="facesr-trial-"))
            result.checkpoint.to_directory(str(keep))
            entry.update(json.loads((keep / "trial.json").read_text()))
            entry["files"] = str(keep)
        out.append(entry)
    return out


def best_per_variant(summaries: list[dict[str, Any]], metric: str, mode: str) -> dict[str, dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    sign = 1.0 if mode == "max" else -1.0
    for s in summaries:
        if "error" in s:
            continue
        value = s["metrics"].get(metric)
        if value is None:
            raise ParamsError(f"params select.metric: '{metric}' is not among the validation metrics "
                              f"({', '.join(sorted(s['metrics']))})")
        if s["variant"] not in best or sign * value > sign * best[s["variant"]]["metrics"][metric]:
            best[s["variant"]] = s
    return best
