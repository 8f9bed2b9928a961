"""The real `train` stage on the two-node cluster of infra/local/up (issue 6, acceptance 2 and 3).

`python -m stages.train` runs as the pipeline runs it, in a process of its own that joins the
cluster through nothing but the variables of the env.sh that `up` wrote. Two trials of 1 CPU
(SRResNet and Method 1 at the tiny profile's sizes) on a head of 1 CPU and a worker node of 1 CPU.
The fault is a real node failure: the worker node's whole process group is SIGKILLed while it
runs a trial (no FACESR_FAULT_* drill).

Both tests share the module's cluster; the kill test runs last (file order) and leaves the
cluster with the head only.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml
from infra_cluster import REPO, cluster_nodes, node_processes, ray_tasks, running_cluster, session, wait_for

pytestmark = pytest.mark.slow

VARIANTS = ["method1", "srresnet"]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """infra/local/up's head + worker node; after `down`, none of its processes (Ray's workers,
    which run in process groups of their own, included) is left."""
    with running_cluster(tmp_path_factory.mktemp("raycluster"), ["ray_head", "ray_worker"]) as cl:
        yield cl
        cl.track()
    assert cl.leftovers() == []


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        base[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return base


def train_params(path: Path, **loop) -> Path:
    """params.yaml's train section with profiles/tiny.yaml's train overrides; one seed, so one trial
    per variant; 1 CPU per trial; `loop` overrides the loop settings."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    section = params["train"]
    _merge(section, yaml.safe_load((REPO / "profiles" / "tiny.yaml").read_text())["train"])
    section["search"]["seed"] = [0]
    section["resources"] = {"cpus_per_trial": 1, "gpus_per_trial": 0}
    section["max_failures"] = 2
    section["loop"].update(device="cpu", **loop)
    path.write_text(yaml.safe_dump({"mlflow": params["mlflow"], "train": section}, sort_keys=False))
    return path


def stage_cmd(params: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "stages.train", "--params", str(params), "--data", str(out.parent / "data"),
            "--models", str(out / "models"), "--metrics", str(out / "train.json"),
            "--curves", str(out / "curves"), "--workdir", str(out / "runs")]


def stage_env(cl, tmp_path: Path) -> dict[str, str]:
    env = cl.env | cl.exports
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"  # a server is test_repro_cluster's
    env["FACESR_NO_PROGRESS"] = "1"
    for var in ("FACESR_FAULT_STEP", "FACESR_FAULT_MODE"):  # the fault here is a real node kill
        env.pop(var, None)
    return env


def link_data(tmp_path: Path, prepared: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "data").symlink_to(prepared)
    return out


def check_outputs(out: Path) -> dict:
    from facesr.models import load_generator

    assert sorted(p.name for p in (out / "models").iterdir()) == [*(f"{v}.pt" for v in VARIANTS), "trials"]
    assert sorted(p.name for p in (out / "curves").iterdir()) == [f"{v}.csv" for v in VARIANTS]
    for v in VARIANTS:
        model, meta = load_generator(out / "models" / f"{v}.pt")
        assert meta["model"] == v
    summary = json.loads((out / "train.json").read_text())
    assert sorted(t["variant"] for t in summary["trials"]) == VARIANTS
    assert all(t["error"] is None for t in summary["trials"]), summary["trials"]
    return summary


def test_train_stage_trials_run_on_both_nodes(ray_cluster, prepared_synthetic, tmp_path):
    nodes = cluster_nodes(ray_cluster)
    assert set(nodes) == {"node_head", "node_worker"}, nodes
    out = link_data(tmp_path, prepared_synthetic)
    params = train_params(tmp_path / "params.yaml")
    log = tmp_path / "stage.log"
    t0 = time.monotonic()
    with session(stage_cmd(params, out), log=log, cwd=REPO, env=stage_env(ray_cluster, tmp_path)) as proc:
        rc = wait_for(proc, 240, log, every=ray_cluster.track)
    print(f"train stage, 2 trials on 2 nodes: {time.monotonic() - t0:.0f} s")
    assert rc == 0, log.read_text()[-6000:]
    summary = check_outputs(out)
    placed = {t["variant"]: t["node_id"] for t in summary["trials"]}
    print(f"placement: {placed}; nodes: {nodes}")
    # Each node has 1 CPU and each trial asks for 1: running together, they must use both nodes.
    assert set(placed.values()) == {nodes["node_head"], nodes["node_worker"]}


def test_train_trial_on_a_killed_node_is_retried_on_the_head(ray_cluster, prepared_synthetic, tmp_path):
    nodes = cluster_nodes(ray_cluster)
    assert set(nodes) == {"node_head", "node_worker"}, nodes
    head, worker_pgid = nodes["node_head"], ray_cluster.pgid("ray_worker")
    out = link_data(tmp_path, prepared_synthetic)
    # Long enough that the worker's trial is still training after both trials checkpointed once.
    steps = 40
    params = train_params(tmp_path / "params.yaml", steps=steps, ckpt_every=4, val_every=20, log_every=4)
    log = tmp_path / "stage.log"
    runs = out / "runs"
    t0 = time.monotonic()
    with session(stage_cmd(params, out), log=log, cwd=REPO, env=stage_env(ray_cluster, tmp_path)) as proc:
        deadline = time.monotonic() + 180
        while True:
            ray_cluster.track()
            busy = ray_tasks(worker_pgid)
            checkpoints = list(runs.glob("*-*/last.pt"))
            if busy and len(checkpoints) == 2:
                break
            assert proc.poll() is None, f"stage ended before the kill:\n{log.read_text()[-6000:]}"
            assert time.monotonic() < deadline, f"no trial training on the worker node: {busy}, {checkpoints}"
            time.sleep(0.3)
        # A crashed machine: its raylet, agents and the trial's worker process vanish at once
        # (the raylet starts its workers in process groups of their own: kill them too).
        victims = node_processes(worker_pgid)
        os.killpg(worker_pgid, signal.SIGKILL)
        for pid, _, _ in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed_at = time.monotonic() - t0
        steps_at_kill = {p.parent.name: _ckpt_step(p.parent) for p in checkpoints}
        print(f"killed the worker node at {killed_at:.0f} s while it ran {busy}; checkpoints {steps_at_kill}")
        rc = wait_for(proc, 240, log, every=ray_cluster.track)
    print(f"train stage with a node killed: {time.monotonic() - t0:.0f} s")
    assert rc == 0, log.read_text()[-6000:]
    summary = check_outputs(out)
    # Every trial completed, the last attempt of each on the head: the worker is gone.
    assert {t["node_id"] for t in summary["trials"]} == {head}, summary["trials"]
    assert all(v["step"] == steps for v in summary["variants"].values())

    # Tune's own record: exactly one trial failed (the one on the killed node) and was retried.
    trial_dirs = [d for d in (runs / "ray" / "train").iterdir() if (d / "params.json").is_file()]
    failed = [d for d in trial_dirs if (d / "error.txt").is_file()]
    assert len(trial_dirs) == 2 and len(failed) == 1, [d.name for d in trial_dirs]
    error = (failed[0] / "error.txt").read_text()
    retried = json.loads((failed[0] / "params.json").read_text())["point"]["trial"]["variant"]
    name = next(t["name"] for t in summary["trials"] if t["variant"] == retried)
    print(f"Tune error of the retried trial {name}: {error[:400]}")
    assert "unavailable" in error or "died" in error, error  # the node's loss, not an error of the trial
    assert steps_at_kill.get(name), f"{name} was killed before its first checkpoint: {steps_at_kill}"
    # It resumed from a checkpoint instead of starting again: the steps it reported (one report per
    # checkpoint, then the final one) never go back, and the retry skipped what was done.
    reported = [json.loads(line)["step"] for line in (failed[0] / "result.json").read_text().splitlines() if line]
    print(f"steps reported by the retried trial: {reported}")
    assert reported == sorted(reported) and reported[-1] == steps, reported
    assert 0 < reported[0] < steps and len(reported) <= steps // 4 + 1, reported
    assert node_processes(worker_pgid) == []

    # MLflow: the retry reopened its trial's nested run (2 trials = 2 nested runs, both finished).
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = summary["mlflow"]["parent_run_id"]
    nested = client.search_runs([client.get_run(parent).info.experiment_id],
                                filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert sorted(r.info.status for r in nested) == ["FINISHED", "FINISHED"]


def _ckpt_step(workdir: Path) -> int | None:
    """The latest step among last.pt and previous.pt: a kill inside save_checkpoint can land after
    last.pt became previous.pt and before the new last.pt is in place (resume reads both)."""
    import torch

    steps = []
    for name in ("last.pt", "previous.pt"):
        try:
            steps.append(int(torch.load(workdir / name, map_location="cpu", weights_only=True)["step"]))
        except Exception:  # absent, or being replaced right now
            pass
    return max(steps, default=None)
