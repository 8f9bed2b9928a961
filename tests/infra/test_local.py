"""infra/local/up, status, down: real servers on 127.0.0.1, used over HTTP with the credentials
`up` generated (and refused without them), and nothing left behind."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from infra_cluster import REPO, is_loopback, make_cluster, node_processes, running_cluster, session, wait_for

from facesr import services
from facesr.services import ServiceAuthError, ServiceUnavailableError

pytestmark = pytest.mark.slow

# The head alone: the one layout in which Ray, too, listens on 127.0.0.1 only (infra/README.md).
LOCAL = ["postgres", "prefect", "mlflow", "ray_head"]
RAY_WORKER_PORTS = range(10002, 20000)  # Ray's default --min/--max-worker-port


def call(url: str, payload: dict | None = None, auth: str | None = None, method: str | None = None) -> tuple[int, object]:
    """(HTTP status, body: JSON, else text) of a request, with basic auth `user:password` when given."""
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method or ("POST" if data else "GET"))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:
            body = resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, None
    try:
        return resp.status, json.loads(body)
    except json.JSONDecodeError:
        return resp.status, body


CLIENT = """
import os, sys
import mlflow, ray
from prefect import flow

@flow(name="facesr-infra-check")
def check() -> str:
    mlflow.set_experiment("infra-check")
    with mlflow.start_run(run_name="over-http") as run:
        mlflow.log_metric("val_psnr", 21.5, step=3)
    # a driver joins the loopback-only head through env.sh alone; its task sees the node's MLflow login
    ray.init(address=os.environ["RAY_ADDRESS"], logging_level="ERROR", log_to_driver=False)
    user = ray.get(ray.remote(lambda: os.environ.get("MLFLOW_TRACKING_USERNAME")).remote())
    print("ray-task-mlflow-user", user, [n["NodeManagerAddress"] for n in ray.nodes()])
    return run.info.run_id

print(check())
"""


def test_up_status_use_down(tmp_path):
    with running_cluster(tmp_path, LOCAL) as cl:
        out = cl.up_output
        env = cl.exports
        mlflow_url, prefect_api = env["MLFLOW_TRACKING_URI"], env["PREFECT_API_URL"]
        mlflow_login = f"{env['MLFLOW_TRACKING_USERNAME']}:{env['MLFLOW_TRACKING_PASSWORD']}"
        prefect_login = env["PREFECT_API_AUTH_STRING"]
        # `up` prints the UIs and the exports a user needs, but not the secrets.
        assert prefect_api.rstrip("/api") in out and mlflow_url in out and env["RAY_ADDRESS"] in out
        assert env["MLFLOW_TRACKING_PASSWORD"] not in out and prefect_login not in out
        status = cl.script("status")
        assert [line.split()[:2] for line in status.stdout.splitlines()] == [[s, "up"] for s in LOCAL]

        # The secrets are the user's alone; Ray's temp dir was made private.
        assert stat.S_IMODE((cl.state / "env.sh").stat().st_mode) == 0o600
        secrets = sorted((cl.state / "secrets").iterdir())
        assert secrets and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in secrets), secrets
        assert stat.S_IMODE((cl.state / "secrets").stat().st_mode) == 0o700
        temp = cl.ray_temp.lstat()
        assert stat.S_ISDIR(temp.st_mode) and stat.S_IMODE(temp.st_mode) == 0o700 and temp.st_uid == os.getuid()

        # MLflow and Prefect refuse a request without credentials or with wrong ones; their health
        # checks stay open (for load balancers), and the right credentials work.
        search = f"{mlflow_url}/api/2.0/mlflow/experiments/search?max_results=5"
        assert call(search)[0] == 401
        assert call(search, auth=f"{env['MLFLOW_TRACKING_USERNAME']}:wrong")[0] == 401
        assert call(search, auth=mlflow_login)[0] == 200
        # the pipeline's user is no admin: it may not make users
        assert call(f"{mlflow_url}/api/2.0/mlflow/users/create", {"username": "x", "password": "y" * 16},
                    auth=mlflow_login)[0] == 403
        assert call(f"{prefect_api}/flows/filter", {})[0] == 401
        assert call(f"{prefect_api}/flows/filter", {}, auth="facesr:wrong")[0] == 401
        assert call(f"{prefect_api}/flows/filter", {}, auth=prefect_login)[0] == 200
        assert call(f"{mlflow_url}/health")[0] == 200 and call(f"{prefect_api}/health")[0] == 200

        # infra/mlflow_user.py (up's and compose's) keeps the user's password the one its caller
        # holds: a changed one is set by the admin, and the old one stops working.
        sys.path.insert(0, str(REPO / "infra"))
        try:
            from mlflow_user import ensure_user
        finally:
            sys.path.pop(0)
        admin = (cl.state / "secrets" / "mlflow_admin_password").read_text().strip()
        user, password = env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]
        assert ensure_user(mlflow_url, user, password, "admin", admin) == "unchanged"
        assert ensure_user(mlflow_url, user, "n" * 32, "admin", admin) == "updated"
        assert call(search, auth=f"{user}:{'n' * 32}")[0] == 200 and call(search, auth=mlflow_login)[0] == 401
        assert ensure_user(mlflow_url, user, password, "admin", admin) == "updated"
        assert call(search, auth=mlflow_login)[0] == 200
        assert ensure_user(mlflow_url, "reader", "r" * 32, "admin", admin) == "created"

        # No secret is on any command line of the cluster's processes (`ps` shows those to everyone).
        values = [f.read_text().strip() for f in secrets if f.suffix != ".ini" and f.name != "pgpass"]
        values.append((cl.state / "ray_auth_token").read_text().strip())
        cmdlines = [args for pgid in cl.groups.values() for _, _, args in node_processes(pgid)]
        assert cmdlines and not [(v[:6], a[:80]) for v in values for a in cmdlines if v.split(":")[-1] in a]

        # The preflight of facesr.services sees all three through env.sh's variables (without
        # them it fails: see the in-process checks below).
        client_env = dict(cl.env, **env)
        pre = subprocess.run([sys.executable, "-m", "facesr.services"], env=client_env, cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        assert pre.returncode == 0, pre.stderr
        assert f"mlflow: {mlflow_url}" in pre.stdout and f"ray: {env['RAY_ADDRESS']}" in pre.stdout

        # A flow with an MLflow run and a Ray task, configured by nothing but the variables: all
        # land on the servers. Meanwhile every socket of the cluster (Ray's workers too) is noted.
        log = tmp_path / "client.log"
        with session([sys.executable, "-c", CLIENT], log=log, env=client_env, cwd=tmp_path) as proc:
            rc = wait_for(proc, 300, log, every=lambda: (cl.track(), cl.track_sockets()))
        text = log.read_text()
        assert rc == 0, text[-3000:]
        assert "ray-task-mlflow-user facesr ['127.0.0.1']" in text
        run_id = text.strip().splitlines()[-1]
        code, run = call(f"{mlflow_url}/api/2.0/mlflow/runs/get?run_id={run_id}", auth=mlflow_login)
        assert code == 200
        assert run["run"]["data"]["metrics"][0]["key"] == "val_psnr" and run["run"]["data"]["metrics"][0]["value"] == 21.5
        assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
        code, runs = call(f"{prefect_api}/flow_runs/filter", {"flows": {"name": {"any_": ["facesr-infra-check"]}}},
                          auth=prefect_login)
        assert [r["state_type"] for r in runs] == ["COMPLETED"]

        # The run is in the cluster's Postgres (not a sqlite file), which takes facesr's password only.
        assert not list(cl.state.rglob("*.db")), list(cl.state.rglob("*.db"))
        import psycopg2

        dsn = dict(host="127.0.0.1", port=cl.env["FACESR_POSTGRES_PORT"], user="facesr", dbname="mlflow")
        os.environ["PGPASSFILE"] = str(cl.state / "secrets" / "pgpass")
        try:
            with psycopg2.connect(**dsn) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM runs WHERE run_uuid = %s", (run_id,))
                assert cur.fetchone() == (1,)
            with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
                psycopg2.connect(**dsn, password="wrong")
        finally:
            del os.environ["PGPASSFILE"]

        # Every socket any process of the cluster listened on was on loopback: Postgres, Prefect,
        # MLflow, and Ray's GCS, raylet, agents and the task's worker.
        cl.track_sockets()
        ports = {s: {port for _, _, _, port in socks} for s, socks in cl.sockets.items()}
        print("listening:", {s: sorted(p) for s, p in ports.items()})
        for service, var in (("postgres", "FACESR_POSTGRES_PORT"), ("prefect", "FACESR_PREFECT_PORT"),
                             ("mlflow", "FACESR_MLFLOW_PORT"), ("ray_head", "FACESR_RAY_PORT")):
            assert int(cl.env[var]) in ports[service], (service, ports)
        assert ports["ray_head"] & set(RAY_WORKER_PORTS), "no Ray worker's socket was seen"
        exposed = [s for socks in cl.sockets.values() for s in socks if not is_loopback(s[2])]
        assert exposed == [], exposed

        # The health checks of facesr.services pass the credentials, and say so when they are wrong.
        with pytest.raises(ServiceAuthError, match="MLFLOW_TRACKING_USERNAME"):
            services.check_mlflow(mlflow_url, timeout=5)  # this process has no login set
        os.environ.update(MLFLOW_TRACKING_USERNAME=env["MLFLOW_TRACKING_USERNAME"],
                          MLFLOW_TRACKING_PASSWORD=env["MLFLOW_TRACKING_PASSWORD"],
                          PREFECT_API_AUTH_STRING="facesr:wrong")
        try:
            services.check_mlflow(mlflow_url, timeout=5)
            with pytest.raises(ServiceAuthError, match="PREFECT_API_AUTH_STRING"):
                services.check_prefect(prefect_api, timeout=5)
            os.environ["PREFECT_API_AUTH_STRING"] = prefect_login
            assert services.check_prefect(prefect_api, timeout=5) == prefect_api
        finally:
            for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PREFECT_API_AUTH_STRING"):
                os.environ.pop(var, None)

        # One service down: status says so and exits non-zero; MLflow preflight fails fast.
        cl.script("down", services=["mlflow"])
        status = cl.script("status", check=False)
        assert status.returncode == 3 and "mlflow      stopped" in status.stdout
        with pytest.raises(ServiceUnavailableError, match=mlflow_url):
            services.check_mlflow(mlflow_url, timeout=2)

    # running_cluster ran `down`: every group, and anything naming the state or Ray temp dir, is gone.
    assert cl.leftovers() == []
    assert not any((cl.state / f"{s}.pid").exists() for s in LOCAL)
    assert not cl.ray_temp.exists()


@pytest.mark.parametrize("plant", ["group-writable", "someone-else's", "symlink"])
def test_up_refuses_a_ray_temp_dir_it_does_not_own(tmp_path, plant):
    """The Ray temp dir has a predictable name in /tmp: one planted by another user is refused
    before anything starts (its owner would control the cluster's sockets and logs)."""
    cl = make_cluster(tmp_path, ["ray_head"])
    if plant == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        cl.ray_temp.symlink_to(tmp_path / "elsewhere")
    else:
        cl.ray_temp.mkdir()
        os.chmod(cl.ray_temp, 0o777 if plant == "group-writable" else 0o700)
        if plant == "someone-else's":
            if os.getuid() != 0:
                pytest.skip("only root can give a folder to another user")
            os.chown(cl.ray_temp, 65534, 65534)
    try:
        proc = cl.script("up", check=False, timeout=60)
        assert proc.returncode == 1, proc.stderr
        reason = {"group-writable": "writable by group or others", "someone-else's": "belongs to uid 65534",
                  "symlink": "not a directory of its own"}[plant]
        assert f"{cl.ray_temp}" in proc.stderr and reason in proc.stderr
        assert not (cl.state / "ray_head.pid").exists()
        assert cl.ray_temp.is_symlink() or cl.ray_temp.is_dir()  # left as it was, for its owner
    finally:
        cl.script("down", check=False)
        if cl.ray_temp.is_symlink():
            cl.ray_temp.unlink()
        elif cl.ray_temp.is_dir():
            cl.ray_temp.rmdir()
    assert cl.leftovers() == []


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
