"""The command line every stage shares, built from its `run`: `python -m stages.<name> <flags>`.

Each flag is a keyword-only parameter of `run` (`per_image` -> `--per-image`, required unless it has
a default), its help the `Args:` line of run's docstring; `--params` names the params file, whose
`<name>:` section (merged with the profile's, facesr.config) is run's `params` and whose origin is
its `source`. A stage reads only that section, and the shared top-level keys it declares: a
keyword-only parameter of `run` named after one of facesr.config.SHARED_KEYS (`profile`, `mlflow`)
is filled from params.yaml, not a flag (dvc.yaml lists the same keys among the stage's params).
`flows.stage` builds the same flags and runs the same `run` as a Prefect flow.

Exit codes: 0, the summary as one JSON line on stdout; 2, bad flags, params or input (argparse, or
a ValueError: `error: <message>` on stderr); anything else is a bug and exits 1 with a traceback.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import re
import sys
from collections.abc import Callable
from typing import Any

from facesr.config import SHARED_KEYS, load_section, load_shared, section_source

Run = Callable[..., dict[str, Any]]
NOT_PATHS = ("smoke_test", "source", *SHARED_KEYS)


def stage_name(run: Run) -> str:
    """`stages.train.run` -> 'train' (also run as `python -m stages.train`, in module __main__): the
    dvc.yaml stage, its params section and its flow."""
    return sys.modules[run.__module__].__spec__.name.rpartition(".")[2]


def shared_keys(run: Run) -> tuple[str, ...]:
    """The top-level params keys besides its section that `run` reads (its keyword-only parameters
    named `profile` or `mlflow`), in SHARED_KEYS order."""
    params = inspect.signature(run).parameters
    return tuple(k for k in SHARED_KEYS if k in params and params[k].kind is params[k].KEYWORD_ONLY)


def build_parser(run: Run, prog: str | None = None) -> argparse.ArgumentParser:
    doc = inspect.getdoc(sys.modules[run.__module__]) or stage_name(run)
    helps = dict(re.findall(r"^ {4}(\w+): (.+)$", (inspect.getdoc(run) or "").partition("Args:")[2], re.M))
    parser = argparse.ArgumentParser(prog=prog or f"python -m stages.{stage_name(run)}", description=doc.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help=f"params file (reads its {stage_name(run)}: section)")
    for name, p in inspect.signature(run).parameters.items():
        if p.kind is p.KEYWORD_ONLY and name not in NOT_PATHS:
            required = p.default is p.empty
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, required=required,
                                default=None if required else p.default, help=helps.get(name))
    parser.add_argument("--smoke-test", action="store_true", help=helps.get("smoke_test"))
    return parser


def load(params_path: str, stage: str, shared: tuple[str, ...] = ()) -> dict[str, Any]:
    """run's arguments from the params file: `params`, its `stage` section, `source`, its origin, and
    each `shared` top-level key (shared_keys(run))."""
    return {"params": load_section(params_path, stage), "source": section_source(params_path),
            **{key: load_shared(params_path, key) for key in shared}}


def main(run: Run, argv: list[str] | None = None, *, prog: str | None = None,
         call: Callable[..., dict[str, Any]] | None = None) -> int:
    """Parse the flags and run the stage, or `call(params_path, paths, smoke_test)`; the exit code."""
    paths = vars(build_parser(run, prog).parse_args(argv))
    params_path, smoke_test = paths.pop("params"), paths.pop("smoke_test")
    try:
        summary = (call(params_path, paths, smoke_test) if call else
                   run(**load(params_path, stage_name(run), shared_keys(run)), **paths, smoke_test=smoke_test))
    except ValueError as exc:  # bad params or input: the message names the file and the problem
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, default=str))
    return 0


def command(run: Run) -> Callable[[list[str] | None], int]:
    """The stage module's `main(argv=None) -> int`."""
    return functools.partial(main, run)
