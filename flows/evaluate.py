"""The `evaluate` stage as the Prefect flow `evaluate`: `python -m flows.evaluate <the flags of python -m stages.evaluate>`.

The command line parses the params once (as `python -m stages.evaluate` does) and runs the flow on the
typed config; exit codes and the JSON summary on stdout are the stage's (stages._cli). DVC decides what
is stale, so no task caches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from facesr.config import EvaluateParams, RunContext, load_context, load_evaluate
from stages import _cli, evaluate


@task(name="score-models", cache_policy=NO_CACHE)
def score_models(
    params: EvaluateParams,
    context: RunContext,
    data: str | Path,
    models: str | Path,
    gan: str | Path,
    out: str | Path,
    per_image: str | Path,
    images: str | Path,
    smoke_test: bool,
) -> dict[str, Any]:
    """Score every model on the test split, log to MLflow."""
    return evaluate.run(
        params,
        context,
        data=data,
        models=models,
        gan=gan,
        out=out,
        per_image=per_image,
        images=images,
        smoke_test=smoke_test,
    )


@flow(name="evaluate", description=(evaluate.__doc__ or "").splitlines()[0])
def evaluate_flow(
    params: EvaluateParams,
    context: RunContext,
    data: str | Path,
    models: str | Path,
    gan: str | Path,
    out: str | Path,
    per_image: str | Path,
    images: str | Path,
    smoke_test: bool = False,
) -> dict[str, Any]:
    summary = score_models(
        params,
        context,
        data=data,
        models=models,
        gan=gan,
        out=out,
        per_image=per_image,
        images=images,
        smoke_test=smoke_test,
    )
    get_run_logger().info("evaluate: %s", json.dumps(summary, default=str))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = evaluate.parser("python -m flows.evaluate").parse_args(argv)
    return _cli.report(
        lambda: evaluate_flow(
            load_evaluate(args.params),
            load_context(args.params),
            data=args.data,
            models=args.models,
            gan=args.gan,
            out=args.out,
            per_image=args.per_image,
            images=args.images,
            smoke_test=args.smoke_test,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
