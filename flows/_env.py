"""Prefect settings every flow needs on this kind of machine, applied before Prefect is imported.

With no PREFECT_API_URL Prefect starts an ephemeral server per process; its first start in a new
PREFECT_HOME takes 17-24 s on a 2-core box, past Prefect's 20 s default, and offline telemetry
prints tracebacks. Values already set in the environment win (a real server, a test's tmp home).
"""

from __future__ import annotations

import os

DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def apply_defaults() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)


apply_defaults()
