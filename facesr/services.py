"""Preflight checks for the servers the pipeline can use: MLflow, Prefect, Ray.

The same code runs on a laptop and on a cluster; only addresses change. Each service is used when
its usual variable is set (`MLFLOW_TRACKING_URI`, `PREFECT_API_URL`, `RAY_ADDRESS`) and none is
needed otherwise. The checks here answer in seconds, so that a stage fails with a message naming
the address and the fix *before* it spends training time, instead of minutes later inside a
client library's retry loop. Servers that want a login (infra/local/up's, the team's) get the
one their clients would send (`MLFLOW_TRACKING_USERNAME`/`_PASSWORD`, `PREFECT_API_AUTH_STRING`),
and a refused login fails as fast, as `ServiceAuthError`.

Only the standard library is imported at module level: `facesr.cli` may import this module.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
FIX_HINT = (
    "start the local servers with `infra/local/up` (or your team's server), "
    "or unset {var} to run without it"
)


class ServiceUnavailableError(RuntimeError):
    """A server named by the environment or params does not answer its health check."""


class ServiceAuthError(ServiceUnavailableError):
    """A server answers but refuses this client's credentials (or wants some and got none)."""


def mlflow_tracking_uri(params: dict[str, Any] | None = None) -> str:
    """The MLflow tracking URI: `$MLFLOW_TRACKING_URI`, else params, else `sqlite:///mlflow.db`.

    Args:
        params: a mapping holding `tracking_uri`, or one holding an `mlflow:` section with it
            (the whole params.yaml or a stage section that nests `mlflow:`). None or no key: skip.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    if params:
        if params.get("tracking_uri"):
            return str(params["tracking_uri"])
        section = params.get("mlflow")
        if isinstance(section, dict) and section.get("tracking_uri"):
            return str(section["tracking_uri"])
    return DEFAULT_TRACKING_URI


def _get(url: str, timeout: float, headers: dict[str, str] | None = None) -> tuple[int, str]:
    # A proxy variable on a workstation must not route a loopback health check elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, headers=headers or {})
    with opener.open(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked by callers
        return resp.status, resp.read(4096).decode("utf-8", "replace")


def _basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")}


def mlflow_auth_headers() -> dict[str, str]:
    """The Authorization header MLflow's client sends: `MLFLOW_TRACKING_USERNAME`/`_PASSWORD`
    (basic auth), else `MLFLOW_TRACKING_TOKEN` (bearer), else none."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    if user and password:
        return _basic(f"{user}:{password}")
    token = os.environ.get("MLFLOW_TRACKING_TOKEN", "")
    return {"Authorization": f"Bearer {token}"} if token else {}


def prefect_auth_headers() -> dict[str, str]:
    """The Authorization header Prefect's client sends: `PREFECT_API_AUTH_STRING` (basic auth,
    `user:password`, for a server started with PREFECT_SERVER_API_AUTH_STRING), else
    `PREFECT_API_KEY` (bearer, Prefect Cloud), else none."""
    auth = os.environ.get("PREFECT_API_AUTH_STRING", "")
    if auth:
        return _basic(auth)
    key = os.environ.get("PREFECT_API_KEY", "")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _authorized(url: str, timeout: float, headers: dict[str, str], what: str, fix: str) -> None:
    """GET an endpoint that needs a login; raise ServiceAuthError when the server refuses it.

    Health endpoints answer without a login (for load balancers), so a server that would refuse
    every call of the stage still passes them: this call is the check that the credentials work.
    """
    try:
        _get(url, timeout, headers)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            sent = "the credentials were refused" if headers else "it wants credentials and none are set"
            raise ServiceAuthError(f"{what} at {url} answered HTTP {exc.code}: {sent}; {fix}") from exc
        raise ServiceUnavailableError(f"{what} at {url} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise ServiceUnavailableError(f"{what} at {url} does not answer ({getattr(exc, 'reason', exc)})") from exc


def _health(url: str, timeout: float, what: str, var: str) -> str:
    try:
        status, body = _get(url, timeout)
    except urllib.error.HTTPError as exc:
        raise ServiceUnavailableError(
            f"{what} at {url} answered HTTP {exc.code}; {FIX_HINT.format(var=var)}"
        ) from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceUnavailableError(
            f"{what} at {url} does not answer ({reason}) within {timeout:g} s; {FIX_HINT.format(var=var)}"
        ) from exc
    if status != 200:
        raise ServiceUnavailableError(f"{what} at {url} answered HTTP {status}; {FIX_HINT.format(var=var)}")
    return body


def check_mlflow(uri: str, timeout: float = 5.0) -> None:
    """Raise ServiceUnavailableError unless an http(s) MLflow server answers `GET /health` with OK
    and accepts this client's credentials (ServiceAuthError when it refuses them).

    Local stores (sqlite:, file:, a plain path) need no server and pass.
    """
    scheme = urlparse(uri).scheme
    if scheme not in ("http", "https"):
        return
    base = uri.rstrip("/")
    body = _health(base + "/health", timeout, "MLflow tracking server", "MLFLOW_TRACKING_URI")
    if body.strip() != "OK":
        raise ServiceUnavailableError(
            f"{uri}/health answered {body.strip()[:80]!r}, not 'OK': is {uri} an MLflow server?"
        )
    _authorized(base + "/api/2.0/mlflow/experiments/search?max_results=1", timeout, mlflow_auth_headers(),
                "MLflow tracking server",
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (infra/local/up's env.sh exports them)")


def check_prefect(url: str | None = None, timeout: float = 5.0) -> str | None:
    """Check the Prefect API at `url` (default `$PREFECT_API_URL`) and that it accepts this client's
    credentials; None when no server is set.

    With no server Prefect starts an ephemeral one itself, so that case is not an error.
    Returns the URL checked.
    """
    url = (url if url is not None else os.environ.get("PREFECT_API_URL", "")).strip()
    if not url:
        return None
    if urlparse(url).scheme not in ("http", "https"):
        raise ServiceUnavailableError(f"PREFECT_API_URL={url!r} is not an http(s) URL (e.g. http://127.0.0.1:4200/api)")
    body = _health(url.rstrip("/") + "/health", timeout, "Prefect API", "PREFECT_API_URL")
    try:
        healthy = json.loads(body)
    except json.JSONDecodeError:
        healthy = None
    if healthy is not True:
        raise ServiceUnavailableError(f"{url}/health answered {body.strip()[:80]!r}, not true: is {url} a Prefect API?")
    _authorized(url.rstrip("/") + "/admin/version", timeout, prefect_auth_headers(), "Prefect API",
                "set PREFECT_API_AUTH_STRING to the server's user:password (infra/local/up's env.sh exports it)")
    return url


def ray_address() -> str | None:
    """`$RAY_ADDRESS` when set (a cluster to join), else None (Ray starts a local instance)."""
    addr = os.environ.get("RAY_ADDRESS", "").strip()
    return addr or None


def ray_init_kwargs(num_cpus: int | None = None) -> dict[str, Any]:
    """Keyword arguments for `ray.init` that join `$RAY_ADDRESS` or start a local instance.

    `num_cpus` sizes a local instance only: a running cluster's resources are its nodes' own,
    and Ray refuses `num_cpus` when it connects to one.
    """
    addr = ray_address()
    if addr:
        return {"address": addr}
    kwargs: dict[str, Any] = {"include_dashboard": False}
    if num_cpus is not None:
        kwargs["num_cpus"] = int(num_cpus)
    return kwargs


def check_ray(address: str | None = None, timeout: float = 5.0) -> str | None:
    """Check that the Ray cluster at `address` (default `$RAY_ADDRESS`) accepts TCP connections.

    `auto` and no address are left to Ray. Returns the address checked.
    """
    addr = (address if address is not None else ray_address()) or None
    if addr is None or addr == "auto":
        return None
    parsed = urlparse(addr if "://" in addr else f"ray://{addr}")
    host, port = parsed.hostname, parsed.port
    if not host or not port:
        raise ServiceUnavailableError(f"RAY_ADDRESS={addr!r} is not host:port (e.g. 127.0.0.1:6380)")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ServiceUnavailableError(
            f"Ray cluster at {addr} does not accept connections ({exc}); {FIX_HINT.format(var='RAY_ADDRESS')}"
        ) from exc
    return addr


def init_ray(num_cpus: int | None = None, **kwargs: Any) -> bool:
    """`ray.init` on `$RAY_ADDRESS` when set (checked first), else a local instance; True if this
    call did it (the caller then shuts Ray down), False when Ray was already initialised here.

    The FACESR_* switches (progress bars, fault-injection drills) travel in the runtime env, so
    they reach trials on a cluster's other nodes too.
    """
    import ray

    if ray.is_initialized():
        return False
    check_ray()
    env = {"env_vars": {k: v for k, v in os.environ.items() if k.startswith("FACESR_")}}
    ray.init(**ray_init_kwargs(num_cpus), **({"runtime_env": env} | kwargs))
    return True


def preflight(params: dict[str, Any] | None = None, timeout: float = 5.0) -> dict[str, str | None]:
    """Check every configured service; return what each resolves to (None = not used)."""
    uri = mlflow_tracking_uri(params)
    check_mlflow(uri, timeout)
    return {
        "mlflow": uri,
        "prefect": check_prefect(timeout=timeout),
        "ray": check_ray(timeout=timeout),
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m facesr.services`: print where MLflow, Prefect and Ray resolve; exit 1 if one is down."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m facesr.services", description=main.__doc__)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        found = preflight(timeout=args.timeout)
    except ServiceUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, value in found.items():
        print(f"{name}: {value or 'local (no server)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
