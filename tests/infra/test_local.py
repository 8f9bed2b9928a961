"""infra/local/up, status, down: real servers on 127.0.0.1, used over HTTP, and nothing left behind."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest
from infra_cluster import REPO, make_cluster, running_cluster

from facesr import services
from facesr.services import ServiceUnavailableError

pytestmark = pytest.mark.slow

ALL = ["prefect", "mlflow", "ray_head", "ray_worker"]


def _post(url: str, payload: dict) -> object:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


CLIENT = """
import os, sys
import mlflow
from prefect import flow

@flow(name="facesr-infra-check")
def check() -> str:
    mlflow.set_experiment("infra-check")
    with mlflow.start_run(run_name="over-http") as run:
        mlflow.log_metric("val_psnr", 21.5, step=3)
    return run.info.run_id

print(check())
"""


def test_up_status_use_down(tmp_path):
    with running_cluster(tmp_path, ALL) as cl:
        out = cl.up_output
        env = cl.exports
        # `up` prints the UIs and the exports a user needs.
        assert env["PREFECT_API_URL"].rstrip("/api") in out and env["MLFLOW_TRACKING_URI"] in out
        assert env["RAY_ADDRESS"] in out
        status = cl.script("status")
        assert [line.split()[:2] for line in status.stdout.splitlines()] == [[s, "up"] for s in ALL]

        # The preflight of facesr.services sees all three through the usual variables.
        client_env = dict(cl.env, **env)
        pre = subprocess.run([sys.executable, "-m", "facesr.services"], env=client_env, cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        assert pre.returncode == 0, pre.stderr
        assert f"mlflow: {env['MLFLOW_TRACKING_URI']}" in pre.stdout and f"ray: {env['RAY_ADDRESS']}" in pre.stdout

        # A flow with an MLflow run, configured by nothing but the variables: both land on the servers.
        proc = subprocess.run([sys.executable, "-c", CLIENT], env=client_env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-3000:]
        run_id = proc.stdout.strip().splitlines()[-1]
        run = _get(f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/runs/get?run_id={run_id}")["run"]
        assert run["data"]["metrics"][0]["key"] == "val_psnr" and run["data"]["metrics"][0]["value"] == 21.5
        assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
        runs = _post(f"{env['PREFECT_API_URL']}/flow_runs/filter",
                     {"flows": {"name": {"any_": ["facesr-infra-check"]}}})
        assert [r["state_type"] for r in runs] == ["COMPLETED"]

        mlflow_url = env["MLFLOW_TRACKING_URI"]
        # One service down: status says so and exits non-zero; MLflow preflight fails fast.
        cl.script("down", services=["mlflow"])
        status = cl.script("status", check=False)
        assert status.returncode == 3 and "mlflow      stopped" in status.stdout
        with pytest.raises(ServiceUnavailableError, match=mlflow_url):
            services.check_mlflow(mlflow_url, timeout=2)

    # running_cluster ran `down`: every group, and anything naming the state or Ray temp dir, is gone.
    assert cl.leftovers() == []
    assert not any((cl.state / f"{s}.pid").exists() for s in ALL)
    assert not cl.ray_temp.exists()


def test_up_reports_a_port_in_use(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cl = make_cluster(tmp_path, ["mlflow"])
        cl.env["FACESR_MLFLOW_PORT"] = str(port)
        cl.env["FACESR_START_TIMEOUT"] = "60"
        try:
            proc = cl.script("up", check=False)
        finally:
            cl.script("down", check=False)
    assert proc.returncode == 1
    assert "mlflow" in proc.stderr and "error" in proc.stderr
    assert cl.leftovers() == []
