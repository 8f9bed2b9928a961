"""facesr.services: address resolution and health checks that fail fast with the fix named."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from facesr import services
from facesr.services import ServiceUnavailableError


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Answer(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the class's status and body (a server that is up but is not MLflow)."""

    status = 200
    body = b"OK"

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    servers = []

    def start(status: int, body: bytes) -> str:
        handler = type("H", (_Answer,), {"status": status, "body": body})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_tracking_uri_env_wins_then_params_then_default(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team:5000")
    assert services.mlflow_tracking_uri({"mlflow": {"tracking_uri": "sqlite:///x.db"}}) == "http://team:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert services.mlflow_tracking_uri({"mlflow": {"tracking_uri": "sqlite:///x.db"}}) == "sqlite:///x.db"
    assert services.mlflow_tracking_uri({"tracking_uri": "file:./mlruns"}) == "file:./mlruns"
    assert services.mlflow_tracking_uri({"mlflow": {"tracking_uri": ""}}) == "sqlite:///mlflow.db"
    assert services.mlflow_tracking_uri(None) == "sqlite:///mlflow.db"


def test_check_mlflow_down_fails_fast_naming_uri_and_fix():
    uri = f"http://127.0.0.1:{_closed_port()}"
    t = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as err:
        services.check_mlflow(uri, timeout=2)
    assert time.monotonic() - t < 5
    assert uri in str(err.value) and "infra/local/up" in str(err.value) and "MLFLOW_TRACKING_URI" in str(err.value)
    assert isinstance(err.value, RuntimeError)


def test_check_mlflow_rejects_unhealthy_and_foreign_servers(http_server):
    with pytest.raises(ServiceUnavailableError, match="HTTP 503"):
        services.check_mlflow(http_server(503, b"starting"), timeout=2)
    with pytest.raises(ServiceUnavailableError, match="not 'OK'"):
        services.check_mlflow(http_server(200, b"<html>some other app</html>"), timeout=2)
    services.check_mlflow(http_server(200, b"OK"), timeout=2)


def test_local_stores_need_no_server():
    services.check_mlflow("sqlite:///nowhere/mlflow.db", timeout=0.1)
    services.check_mlflow("file:///tmp/mlruns", timeout=0.1)


def test_check_prefect(monkeypatch, http_server):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert services.check_prefect() is None  # ephemeral Prefect: nothing to check
    url = http_server(200, b"true") + "/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    assert services.check_prefect() == url
    with pytest.raises(ServiceUnavailableError, match="not true"):
        services.check_prefect(http_server(200, b"false") + "/api")
    down = f"http://127.0.0.1:{_closed_port()}/api"
    with pytest.raises(ServiceUnavailableError, match="PREFECT_API_URL"):
        services.check_prefect(down, timeout=2)
    with pytest.raises(ServiceUnavailableError, match="not an http"):
        services.check_prefect("127.0.0.1:4200")


def test_ray_kwargs_follow_ray_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert services.ray_init_kwargs(2) == {"include_dashboard": False, "num_cpus": 2}
    assert services.ray_init_kwargs() == {"include_dashboard": False}
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    # Ray refuses num_cpus when joining a cluster: the nodes' own resources count.
    assert services.ray_init_kwargs(2) == {"address": "10.0.0.5:6379"}


def test_init_ray_on_a_dead_address_fails_before_ray_starts(monkeypatch):
    import ray

    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_closed_port()}")
    t = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match="RAY_ADDRESS"):
        services.init_ray()
    assert time.monotonic() - t < 10
    assert not ray.is_initialized()


def test_check_ray_rejects_malformed_address():
    with pytest.raises(ServiceUnavailableError, match="host:port"):
        services.check_ray("just-a-host")
    assert services.check_ray("auto") is None


def test_preflight_reports_local_defaults(monkeypatch):
    for var in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    assert services.preflight({"mlflow": {"tracking_uri": "sqlite:///m.db"}}) == {
        "mlflow": "sqlite:///m.db", "prefect": None, "ray": None}


def test_trials_ask_for_no_more_cpus_than_the_largest_node(monkeypatch, caplog):
    """A 2-CPU trial on infra/local/up's 1-CPU nodes would wait forever in Tune's queue."""
    import ray

    from facesr.train.trials import fit_cpus

    def nodes(*sizes):
        return lambda: [{"Alive": True, "Resources": {"CPU": float(c)}} for c in sizes] + [
            {"Alive": False, "Resources": {"CPU": 64.0}}]

    monkeypatch.setattr(ray, "nodes", nodes(1, 1))
    assert fit_cpus(2, "train_gan") == 1
    assert "train_gan.resources.cpus_per_trial is 2 but the largest Ray node has 1 CPU" in caplog.text
    monkeypatch.setattr(ray, "nodes", nodes(1, 4))
    assert fit_cpus(2, "train") == 2
    # A head of 0 CPUs whose workers an autoscaler adds: the request stays as it is.
    monkeypatch.setattr(ray, "nodes", nodes(0))
    assert fit_cpus(2, "train") == 2


class _Guarded(http.server.BaseHTTPRequestHandler):
    """Health open, everything else behind one basic-auth login (as MLflow's and Prefect's are)."""

    health = b"OK"
    login = "facesr:s3cret"

    def do_GET(self):  # noqa: N802 - http.server's name
        import base64

        if self.path.endswith("/health"):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(self.health)
            return
        want = "Basic " + base64.b64encode(self.login.encode()).decode()
        self.send_response(200 if self.headers.get("Authorization") == want else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def guarded_server():
    servers = []

    def start(health: bytes) -> str:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("G", (_Guarded,), {"health": health}))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_checks_send_the_clients_credentials(monkeypatch, guarded_server):
    """Health endpoints answer anyone: the checks also make a call that needs the login, with the
    header MLflow's and Prefect's clients would send, so a missing or wrong login fails fast."""
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                "PREFECT_API_AUTH_STRING", "PREFECT_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    mlflow = guarded_server(b"OK")
    with pytest.raises(services.ServiceAuthError, match="HTTP 401.*none are set.*MLFLOW_TRACKING_USERNAME"):
        services.check_mlflow(mlflow, timeout=2)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "facesr")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(services.ServiceAuthError, match="credentials were refused"):
        services.check_mlflow(mlflow, timeout=2)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    services.check_mlflow(mlflow, timeout=2)

    prefect = guarded_server(b"true") + "/api"
    with pytest.raises(services.ServiceAuthError, match="PREFECT_API_AUTH_STRING"):
        services.check_prefect(prefect, timeout=2)
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "facesr:s3cret")
    assert services.check_prefect(prefect, timeout=2) == prefect
    # an auth error is still a ServiceUnavailableError: callers that catch that one keep working
    assert issubclass(services.ServiceAuthError, ServiceUnavailableError)
