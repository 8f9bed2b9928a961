"""Prefect flows: one per stage (``python -m flows.<name> <its stage's flags>``) and ``pipeline``.

Every flow module imports this package first, so the settings below apply before Prefect reads them
(on its first import). Without PREFECT_API_URL Prefect starts an ephemeral server per process; its
first start in a new PREFECT_HOME takes 17-24 s on a 2-core box, past Prefect's 20 s default, and
offline telemetry prints tracebacks. Values already set in the environment win (a real server, a
test's tmp home).
"""

import os

for _key, _value in {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_USAGE_STATS_ENABLED": "0",
}.items():
    os.environ.setdefault(_key, _value)


def log_summary(stage: str, summary: dict) -> dict:
    """Put a stage's summary in its flow run's log (the Prefect UI shows it), and give it back."""
    import json

    from prefect import get_run_logger

    get_run_logger().info("%s: %s", stage, json.dumps(summary, default=str))
    return summary
