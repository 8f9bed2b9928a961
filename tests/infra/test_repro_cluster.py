"""`dvc repro` of the tiny profile on the servers of infra/local/up (issue 6, acceptance 1; issue 15).

In a copy of the repo, with nothing but the variables of the env.sh that `up` wrote: every
stage's flow run is on that Prefect server, every MLflow run, metric and registered model on that
MLflow server (read back over its REST API, with the cluster's login), the train trials on that
Ray cluster (the node ids the stage recorded are the cluster's); after `down` not one process of
it is left. MLflow and Prefect keep their stores in the cluster's Postgres, and train runs four
trials at once (2 variants x 2 seeds on 2 + 2 CPUs): parallel writers to one tracking store are
where sqlite fails. Meanwhile every socket the cluster listens on is noted: only Ray's may be on
other interfaces than loopback (a head with a worker node cannot be bound to 127.0.0.1).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import yaml
from infra_cluster import (
    BIN,
    cluster_nodes,
    copy_repo,
    is_loopback,
    pgrep,
    running_cluster,
    session,
    wait_for,
)

from facesr.metrics.spec import RESERVED

pytestmark = [pytest.mark.slow, pytest.mark.long]

ALL = ["postgres", "prefect", "mlflow", "ray_head", "ray_worker"]
STAGES = ["download", "merge_masks", "downscale", "train", "train_gan", "evaluate", "report"]
REGISTERED = {"facesr-srresnet", "facesr-method1", "facesr-gan"}
SEEDS = [0, 1]
RAY_WORKER_PORTS = range(10002, 20000)  # Ray's default --min/--max-worker-port


class Api:
    """JSON over HTTP with basic auth (the login env.sh exports)."""

    def __init__(self, base: str, login: str):
        self.base = base.rstrip("/")
        self.headers = {"Content-Type": "application/json",
                        "Authorization": "Basic " + base64.b64encode(login.encode()).decode()}
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def raw(self, endpoint: str, payload: dict | None = None, **query) -> bytes:
        url = f"{self.base}{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(url, data=data, method="POST" if data else "GET", headers=self.headers)
        with self.opener.open(req, timeout=60) as resp:
            return resp.read()

    def __call__(self, endpoint: str, payload: dict | None = None, **query) -> dict | list:
        return json.loads(self.raw(endpoint, payload, **query))


def _history(mlflow: Api, run_id: str, key: str) -> set[tuple[int, float]]:
    points, token = [], None
    while True:
        page = mlflow("/api/2.0/mlflow/metrics/get-history", run_id=run_id, metric_key=key, max_results=1000,
                      **({"page_token": token} if token else {}))
        points += [(int(m["step"]), float(m["value"])) for m in page.get("metrics", [])]
        token = page.get("next_page_token")
        if not token:
            return set(points)


def _same(a: set[tuple[int, float]], b: set[tuple[int, float]]) -> bool:
    def key(points):
        return sorted((s, "nan" if math.isnan(v) else round(v, 9)) for s, v in points)
    return key(a) == key(b)


def test_dvc_repro_of_tiny_profile_on_local_servers(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    with running_cluster(tmp_path, ALL, FACESR_RAY_HEAD_CPUS="2", FACESR_RAY_WORKER_CPUS="2") as cl:
        nodes = cluster_nodes(cl)
        assert set(nodes) == {"node_head", "node_worker"}, nodes
        exports = cl.exports
        env = cl.env | exports | {"PATH": f"{BIN}:{cl.env.get('PATH', '')}", "FACESR_NO_PROGRESS": "1"}
        four = tmp_path / "four-trials.yaml"
        # select the tiny profile (the runs' profile tag) and bake four seeds into params.yaml
        four.write_text(yaml.safe_dump({"profile": "tiny", "train": {"search": {"seed": SEEDS}}}))
        subprocess.run([sys.executable, "-m", "facesr.profile", str(four)], cwd=repo, env=env,
                       check=True, capture_output=True)
        log = tmp_path / "repro.log"
        t0 = time.monotonic()

        def watch():
            cl.track()
            cl.track_sockets()

        with session([str(BIN / "dvc"), "repro"], log=log, cwd=repo, env=env) as proc:
            rc = wait_for(proc, 900, log, every=watch)
        elapsed = time.monotonic() - t0
        out = log.read_text()
        print(f"dvc repro of the tiny profile (4 train trials) on the local servers: {elapsed:.0f} s")
        assert rc == 0, out[-8000:]
        assert [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")] == STAGES
        cl.track()

        # Prefect: every flow run on this server is one stage's, and completed.
        prefect = Api(exports["PREFECT_API_URL"], exports["PREFECT_API_AUTH_STRING"])
        flows = {f["id"]: f["name"] for f in prefect("/flows/filter", {})}
        flow_runs = prefect("/flow_runs/filter", {"limit": 200})
        runs = [(flows.get(r["flow_id"]), r["state_type"]) for r in flow_runs]
        assert sorted(runs) == sorted((stage, "COMPLETED") for stage in STAGES), runs
        print("stage run times (s):", {flows[r["flow_id"]]: round(r["total_run_time"]) for r in flow_runs})

        # MLflow, over its REST API: the experiment's runs, the nested trial runs, the registry.
        mlflow = Api(exports["MLFLOW_TRACKING_URI"],
                     f"{exports['MLFLOW_TRACKING_USERNAME']}:{exports['MLFLOW_TRACKING_PASSWORD']}")
        exp = mlflow("/api/2.0/mlflow/experiments/get-by-name", experiment_name="facesr")["experiment"]
        mruns = mlflow("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100})["runs"]
        tags = [{t["key"]: t["value"] for t in r["data"]["tags"]} for r in mruns]
        by_stage: dict[str, list[dict]] = {}
        for r, t in zip(mruns, tags, strict=True):
            assert r["info"]["status"] == "FINISHED", (t.get("mlflow.runName"), r["info"]["status"])
            assert t.get("profile") == "tiny"
            by_stage.setdefault(t["dvc_stage"], []).append(r)
        # train: a parent + one nested run per trial (2 variants x 2 seeds); train_gan: 1 + 1; evaluate: 1
        assert {s: len(v) for s, v in by_stage.items()} == {"train": 1 + 2 * len(SEEDS), "train_gan": 2, "evaluate": 1}
        assert all(r["info"]["artifact_uri"].startswith("mlflow-artifacts:") for r in mruns)

        # Every metric of every trial arrived: each value of the curve the trial itself wrote
        # (curves.csv, logged as its artifact) is in the server's history of that metric.
        train = json.loads((repo / "metrics" / "train.json").read_text())
        gan = json.loads((repo / "metrics" / "train_gan.json").read_text())
        trials = train["trials"] + gan["trials"]
        assert len(train["trials"]) == 2 * len(SEEDS) and all("error" not in t or t["error"] is None for t in trials)
        points = 0
        for trial in trials:
            rid = trial["mlflow_run_id"]
            rows = list(csv.DictReader(io.StringIO(mlflow.raw("/get-artifact", path="curves.csv", run_uuid=rid).decode())))
            assert rows, trial["name"]
            for key in (k for k in rows[0] if k != "step"):
                wrote = {(int(r["step"]), float(r[key])) for r in rows if r[key] != ""}
                got = _history(mlflow, rid, key)
                assert _same(wrote, got), (trial["name"], key, sorted(wrote), sorted(got))
                points += len(wrote)
        print(f"{points} metric points of {len(trials)} trials all on the server")

        # The four train trials ran side by side: all four runs were open at one moment.
        nested = [r["info"] for r in by_stage["train"] if "mlflow.parentRunId" in
                  {t["key"] for t in r["data"]["tags"]}]
        assert len(nested) == 2 * len(SEEDS)
        assert max(int(i["start_time"]) for i in nested) < min(int(i["end_time"]) for i in nested), nested

        # The registry holds every version the stages registered, each from its variant's best trial.
        registered = mlflow("/api/2.0/mlflow/registered-models/search", max_results=100)
        assert REGISTERED <= {m["name"] for m in registered.get("registered_models", [])}
        run_of = {t["name"]: t["mlflow_run_id"] for t in trials}
        versions = [v for summary in (train, gan) for v in summary["variants"].values()]
        assert len(versions) == 3
        for v in versions:
            name, version = v["registered_model"][len("models:/"):].rsplit("/", 1)
            mv = mlflow("/api/2.0/mlflow/model-versions/get", name=name, version=version)["model_version"]
            assert mv["status"] == "READY" and mv["run_id"] == run_of[v["trial"]], (v, mv)
        # Nothing went to a local store in the repo, and the artifacts are in the server's root.
        assert not any((repo / p).exists() for p in ("mlflow.db", "mlruns", "mlartifacts"))
        assert not list(cl.state.rglob("*.db")), "a sqlite store in the cluster's state dir"
        # 3 logged models (srresnet, method1, method2), uploaded through the server (mlflow-artifacts:).
        stored = list((cl.state / "mlflow" / "artifacts").rglob("MLmodel"))
        assert len(stored) == 3, stored

        # Ray: the trials ran on this cluster's nodes; the four train trials on both of them.
        placed = {t["name"]: t["node_id"] for t in trials}
        print(f"trial placement: {placed}; nodes: {nodes}")
        assert set(placed.values()) <= set(nodes.values()), (placed, nodes)
        assert {t["node_id"] for t in train["trials"]} == set(nodes.values())
        assert json.loads((repo / "metrics" / "eval.json").read_text()).keys() - set(RESERVED) == {
            "bicubic", "srresnet", "method1", "method2"}

        # Sockets: Postgres, Prefect and MLflow on loopback only. Ray's head with a worker node
        # listens on every interface (infra/README.md): only on its own port block RAY_PORT..+16
        # and the worker range, which the README's firewall rule covers.
        cl.track_sockets()
        ray_port = int(cl.env["FACESR_RAY_PORT"])
        exposed = sorted({(s, args.split()[0], addr, port) for s, socks in cl.sockets.items()
                          for _, args, addr, port in socks if not is_loopback(addr)})
        print("listening beyond loopback:", exposed)
        assert not [e for e in exposed if e[0] not in ("ray_head", "ray_worker")], exposed
        assert not [e for e in exposed if not (ray_port <= e[3] <= ray_port + 16 or e[3] in RAY_WORKER_PORTS)], exposed
        for service in ("postgres", "prefect", "mlflow"):
            assert cl.sockets[service], f"no socket of {service} seen"

    # `down` (run by running_cluster): no process of the cluster, Ray's workers included, and none
    # of the pipeline's is left.
    assert cl.leftovers() == []
    assert pgrep(str(repo)) == []
    assert not any((cl.state / f"{s}.pid").exists() for s in ALL)
