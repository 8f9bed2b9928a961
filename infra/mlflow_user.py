"""Make sure the pipeline's MLflow user exists with the given password (MLflow's basic-auth app).

    MLFLOW_ADMIN_PASSWORD=... MLFLOW_USER_PASSWORD=... python infra/mlflow_user.py URL [--user facesr]

The passwords come from the environment, never the command line (which every local user can read
in `ps`). The user is created when missing; when it exists but the password differs, the admin
sets it, so the secret the caller holds is the one that works. The user is not an admin: it owns
what it creates (experiments, registered models) and reads the rest (`default_permission`).
Used by infra/local/up and by the `mlflow-user` service of infra/docker/compose.yaml.
Standard library only, so it runs before (or without) the facesr environment.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class MlflowUserError(RuntimeError):
    """The MLflow server refused to create or update the user."""


def _call(url: str, user: str, password: str, method: str = "GET", payload: dict | None = None) -> tuple[int, dict]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Basic {token}",
                                                              "Content-Type": "application/json"},
                                 data=json.dumps(payload).encode() if payload is not None else None)
    # A proxy variable must not route a loopback call elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:  # noqa: S310 - the caller's MLflow URL
            body = resp.read()
            return resp.status, json.loads(body) if body.strip() else {}
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        try:
            return exc.code, json.loads(body)
        except json.JSONDecodeError:
            return exc.code, {"message": body[:300]}


def ensure_user(base: str, user: str, password: str, admin: str, admin_password: str) -> str:
    """Create `user` or reset its password; return 'created', 'updated' or 'unchanged'."""
    api = base.rstrip("/") + "/api/2.0/mlflow"
    status, _ = _call(f"{api}/experiments/search?max_results=1", user, password)
    if status == 200:
        return "unchanged"
    status, body = _call(f"{api}/users/get?" + urllib.parse.urlencode({"username": user}), admin, admin_password)
    if status == 401:
        raise MlflowUserError(f"{base}: the admin '{admin}' was refused (HTTP 401): wrong MLFLOW_ADMIN_PASSWORD")
    if status == 200:
        status, body = _call(f"{api}/users/update-password", admin, admin_password, "PATCH",
                             {"username": user, "password": password})
        done = "updated"
    elif status == 404:
        status, body = _call(f"{api}/users/create", admin, admin_password, "POST",
                             {"username": user, "password": password})
        done = "created"
    else:
        raise MlflowUserError(f"{base}: looking up user '{user}' answered HTTP {status}: {body}")
    if status != 200:
        raise MlflowUserError(f"{base}: could not set up user '{user}' (HTTP {status}): {body}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the MLflow server, e.g. http://127.0.0.1:5000")
    parser.add_argument("--user", default="facesr")
    parser.add_argument("--admin", default=os.environ.get("MLFLOW_AUTH_ADMIN_USERNAME", "admin"))
    args = parser.parse_args(argv)
    missing = [v for v in ("MLFLOW_ADMIN_PASSWORD", "MLFLOW_USER_PASSWORD") if not os.environ.get(v)]
    if missing:
        print(f"error: set {' and '.join(missing)} in the environment", file=sys.stderr)
        return 2
    try:
        done = ensure_user(args.url, args.user, os.environ["MLFLOW_USER_PASSWORD"], args.admin,
                           os.environ["MLFLOW_ADMIN_PASSWORD"])
    except (MlflowUserError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"MLflow user '{args.user}' on {args.url}: {done}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
