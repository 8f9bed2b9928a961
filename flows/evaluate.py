"""The `evaluate` stage as the Prefect flow `evaluate`: `python -m flows.evaluate <the flags of python -m stages.evaluate>`.

The command line is the stage's own (`stages.evaluate.main`: the params parsed once into the typed config,
the same exit codes and JSON summary on stdout) with this flow as its runner; the flow's one task is
the stage's `run`. DVC decides what is stale, so no task caches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from facesr.config import EvaluateParams, RunContext
from flows import log_summary
from stages import evaluate

score_models = task(evaluate.run, name="score-models", cache_policy=NO_CACHE,
                    description="Score every model on the test split, log to MLflow.")


@flow(name="evaluate", description=(evaluate.__doc__ or "").splitlines()[0])
def evaluate_flow(params: EvaluateParams, context: RunContext, data: str | Path, models: str | Path,
                  gan: str | Path, out: str | Path, per_image: str | Path, images: str | Path,
                  extra_models: list[str] | None = None, smoke_test: bool = False) -> dict[str, Any]:
    return log_summary("evaluate", score_models(params, context, data=data, models=models, gan=gan, out=out,
                                                per_image=per_image, images=images,
                                                extra_models=list(extra_models or ()), smoke_test=smoke_test))


def main(argv: list[str] | None = None) -> int:
    return evaluate.main(argv, run=evaluate_flow, prog="python -m flows.evaluate")


if __name__ == "__main__":
    raise SystemExit(main())
