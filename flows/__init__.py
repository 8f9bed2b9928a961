"""Prefect flows: one per DVC stage (``python -m flows.<stage> <stage flags>``) plus ``pipeline``.

Each stage flow calls ``stages.<stage>.run`` through small typed tasks, so a ``dvc repro`` shows
every stage as a flow run in the Prefect UI when PREFECT_API_URL points at a server, and runs on an
ephemeral server otherwise. ``flows.pipeline`` runs ``dvc repro`` itself, on demand or on a cron.
"""

# Prefect reads its settings when first imported, and every flow module imports this package first.
from flows import _env  # noqa: F401
