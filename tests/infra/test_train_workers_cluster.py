"""A 2-worker trial on the two-node cluster of infra/local/up (issue 24, acceptance 3).

`python -m stages.train` joins the cluster through env.sh's variables, as in test_train_cluster.
One Method 1 trial of `workers_per_trial: 2` and 1 CPU per worker on a head of 1 CPU and a worker
node of 1 CPU: Ray Train must put one worker on each node (gloo over 127.0.0.1), and the trial's
driver, which asks for memory only, fits beside them.
"""

from __future__ import annotations

import json
import time

import pytest
from infra_cluster import REPO, cluster_nodes, session, wait_for
from test_train_cluster import link_data, stage_cmd, stage_env, train_params

pytestmark = [pytest.mark.slow, pytest.mark.long]  # about a minute on 2 cores: test-long


def test_one_trial_of_two_workers_spans_both_nodes(ray_cluster, prepared_synthetic, tmp_path):
    import yaml

    nodes = cluster_nodes(ray_cluster)
    assert set(nodes) == {"node_head", "node_worker"}, nodes
    out = link_data(tmp_path, prepared_synthetic)
    params = train_params(tmp_path / "params.yaml", batch_size=2)
    doc = yaml.safe_load(params.read_text())
    doc["train"]["variants"] = {"method1": doc["train"]["variants"]["method1"]}
    doc["train"]["resources"]["workers_per_trial"] = 2
    params.write_text(yaml.safe_dump(doc, sort_keys=False))
    log = tmp_path / "stage.log"
    t0 = time.monotonic()
    with session(stage_cmd(params, out), log=log, cwd=REPO, env=stage_env(ray_cluster, tmp_path)) as proc:
        rc = wait_for(proc, 300, log, every=ray_cluster.track)
    print(f"train stage, one 2-worker trial on 2 nodes: {time.monotonic() - t0:.0f} s")
    assert rc == 0, log.read_text()[-6000:]

    summary = json.loads((out / "train.json").read_text())
    (trial,) = summary["trials"]
    assert trial["error"] is None and trial["step"] == doc["train"]["loop"]["steps"], trial
    ranks = {r["rank"]: r for r in (json.loads(p.read_text()) for p in
                                    (out / "runs" / trial["name"] / "workers").glob("rank*.json"))}
    print(f"workers: {ranks}; nodes: {nodes}")
    assert sorted(ranks) == [0, 1]
    assert {r["node_id"] for r in ranks.values()} == {nodes["node_head"], nodes["node_worker"]}
    assert trial["node_id"] == ranks[0]["node_id"]  # rank 0 reported the trial

    from facesr.models import load_generator

    _, meta = load_generator(out / "models" / "method1.pt")
    assert meta["model"] == "method1" and meta["extra"]["step"] == trial["step"]
