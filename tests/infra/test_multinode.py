"""Trials on a two-node Ray cluster on 127.0.0.1: placed on both nodes; retried when a node dies.

The cluster is the one `infra/local/up` starts (head: 1 CPU + `node_head`, worker: 1 CPU +
`node_worker`); the driver joins it through RAY_ADDRESS exactly as the train stage does.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

# long: test_train_cluster.py checks the same placement and node failure with the real train stage in
# `make test`; this in-process driver's route (services.init_ray with the cluster's token) runs in test-long
pytestmark = [pytest.mark.slow, pytest.mark.long]


def _trainable(config):
    import ray
    from ray import tune

    node = ray.get_runtime_context().get_node_id()
    # One file per attempt, so the test sees where each attempt of each trial ran.
    Path(config["marks"], f"{config['trial']}.{node}.{time.monotonic_ns()}").touch()
    for step in range(config["steps"]):
        time.sleep(config["step_s"])
        tune.report({"node_id": node, "step": step})


def _nodes(ray) -> dict[str, str]:
    """node_head / node_worker -> node id, from the custom resources each node was started with."""
    out = {}
    for n in ray.nodes():
        if n["Alive"]:
            for role in ("node_head", "node_worker"):
                if role in n["Resources"]:
                    out[role] = n["NodeID"]
    return out


@pytest.fixture(scope="module")
def ray_driver(ray_cluster):
    import ray
    import ray.cloudpickle

    from facesr import services

    # Worker processes cannot import this test module (tests/ is not a package on their path):
    # ship the trainable by value instead.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # The variables of the env.sh that `up` wrote: RAY_ADDRESS and the cluster's own auth token.
    saved = {k: os.environ.get(k) for k in ray_cluster.exports}
    os.environ.update(ray_cluster.exports)
    # A process that imported Ray before these variables were set (earlier tests in this session)
    # holds the old auth mode and token in caches; a new process, as in the pipeline, reads them fresh.
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    try:
        services.init_ray()
        yield ray
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        # Drop the cluster's auth mode and token from Ray's in-process caches too, or every later
        # local ray.init in this pytest process starts a GCS that rejects its own clients.
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


def _tune(marks: Path, storage: Path, *, trials: int, steps: int, step_s: float, max_failures: int):
    from ray import tune

    marks.mkdir(parents=True, exist_ok=True)
    tuner = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": 1}),
        param_space={"trial": tune.grid_search(list(range(trials))), "steps": steps, "step_s": step_s,
                     "marks": str(marks)},
        run_config=tune.RunConfig(storage_path=str(storage), name="t", verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=max_failures)),
    )
    return tuner.fit()


def test_trials_are_placed_on_both_nodes(ray_driver, tmp_path):
    nodes = _nodes(ray_driver)
    assert set(nodes) == {"node_head", "node_worker"}, f"cluster nodes: {nodes}"
    grid = _tune(tmp_path / "marks", tmp_path / "tune", trials=2, steps=2, step_s=1.0, max_failures=0)
    assert not grid.errors
    placed = {r.metrics["node_id"] for r in grid}
    # Each node has 1 CPU and each trial asks for 1: running together, they must use both nodes.
    assert placed == set(nodes.values())


def test_trial_on_a_killed_node_is_retried_on_the_other(ray_driver, ray_cluster, tmp_path):
    nodes = _nodes(ray_driver)
    worker, head = nodes["node_worker"], nodes["node_head"]
    marks = tmp_path / "marks"
    killed: dict[str, float] = {}

    def kill_worker_node_once_it_runs_a_trial():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if marks.is_dir() and any(f".{worker}." in p.name for p in marks.iterdir()):
                time.sleep(1.0)  # well inside the trial's 8 steps
                # SIGKILL the node's whole process group: raylet, its agents and the trial's worker,
                # as a crashed machine would vanish; no graceful drain.
                os.killpg(ray_cluster.pgid("ray_worker"), signal.SIGKILL)
                killed["at"] = time.monotonic()
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_worker_node_once_it_runs_a_trial, daemon=True)
    killer.start()
    grid = _tune(marks, tmp_path / "tune", trials=2, steps=8, step_s=1.0, max_failures=2)
    killer.join(timeout=5)

    assert "at" in killed, "no trial started on the worker node, so it was never killed"
    assert not grid.errors, grid.errors
    finals = {r.config["trial"]: r.metrics for r in grid}
    # Every trial ran to its last step, and all finished on the head: the worker is gone.
    assert {m["step"] for m in finals.values()} == {7}
    assert {m["node_id"] for m in finals.values()} == {head}
    attempts: dict[int, list[str]] = {}
    for p in sorted(marks.iterdir(), key=lambda p: int(p.name.rsplit(".", 1)[1])):
        trial, node, _ = p.name.split(".")
        attempts.setdefault(int(trial), []).append(node)
    retried = [t for t, where in attempts.items() if where[0] == worker]
    assert len(retried) == 1 and attempts[retried[0]] == [worker, head], attempts
