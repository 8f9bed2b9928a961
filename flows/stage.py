"""Any stage as a Prefect flow named after it: `python -m flows.stage stages.<name> <its flags>`.

The flags are those of `python -m stages.<name>` (stages._cli builds both from `run`), and so are the
exit codes and the JSON summary on stdout. The flow `<name>` runs two tasks: `load-params` (its
section of the params file, plus the shared top-level keys its `run` declares: stages._cli) and
`run-<name>` (the stage's own `run`). DVC decides what is stale, so
no task caches; only I/O retries: a stage that fetches over the network sets `RETRIES`.
"""

from __future__ import annotations

import importlib
import json
import sys
from types import ModuleType
from typing import Any

from prefect import Flow, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from stages import _cli

load_params = task(_cli.load, name="load-params", cache_policy=NO_CACHE)


def stage_flow(stage: ModuleType) -> Flow[..., dict[str, Any]]:
    """The flow of a stage module: `paths` are run's path arguments, by name."""
    name, shared = _cli.stage_name(stage.run), _cli.shared_keys(stage.run)
    run_stage = task(stage.run, name=f"run-{name}", cache_policy=NO_CACHE,
                     retries=getattr(stage, "RETRIES", 0), retry_delay_seconds=30)

    @flow(name=name, description=(stage.__doc__ or name).splitlines()[0], log_prints=True)
    def stage_run(params_path: str = "params.yaml", paths: dict[str, str | None] | None = None,
                  smoke_test: bool = False) -> dict[str, Any]:
        summary = run_stage(**load_params(params_path, name, shared), **(paths or {}), smoke_test=smoke_test)
        get_run_logger().info("%s: %s", name, json.dumps(summary, default=str))
        return summary

    return stage_run


def main(argv: list[str] | None = None) -> int:
    module, *flags = (sys.argv[1:] if argv is None else argv) or [""]
    try:  # the command line names the module, so dvc.yaml shows (and tests/test_dvc_deps reads) what runs
        stage = importlib.import_module(module)
        the_flow = stage_flow(stage)
    except (ImportError, ValueError, AttributeError) as exc:
        print(f"error: {module!r}: {exc} (usage: python -m flows.stage stages.<name> <its flags>)", file=sys.stderr)
        return 2
    return _cli.main(stage.run, flags, prog=f"python -m flows.stage {module}", call=the_flow)


if __name__ == "__main__":
    raise SystemExit(main())
