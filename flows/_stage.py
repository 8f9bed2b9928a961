"""What every stage flow shares: loading the stage's params section and the command line.

A stage flow module defines its ``@flow(name="<stage>")`` with the stage's paths as typed keyword
arguments, and a task that calls ``stages.<stage>.run``. ``main`` reuses the stage's own
``build_parser()``, so the flags of ``python -m flows.<stage>`` and ``python -m stages.<stage>`` are
the same by construction.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from facesr.config import load_section


# DVC decides what is stale; Prefect's own task cache would only hide a rerun DVC asked for.
@task(name="load-params", cache_policy=NO_CACHE)
def load_params(params_path: str, section: str) -> dict[str, Any]:
    """The stage's own section of the params file (a ParamsError names the file and section)."""
    return load_section(params_path, section)


def main_for(
    build_parser: Callable[[], argparse.ArgumentParser],
    flow_fn: Callable[..., dict[str, Any]],
    argv: list[str] | None = None,
) -> int:
    """Parse the stage's flags and run its flow; a failed flow exits non-zero so `dvc repro` stops."""
    args = vars(build_parser().parse_args(argv))
    params_path = args.pop("params")
    smoke_test = bool(args.pop("smoke_test", False))
    try:
        flow_fn(
            params_path=str(params_path),
            smoke_test=smoke_test,
            **{k: str(v) for k, v in args.items() if v is not None},
        )
    except ValueError as exc:
        # Bad params or input: the message names the file and the problem; no traceback needed.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
