"""Prefect flow of the `merge_masks` stage: Merge the per-part masks into one 16-bit parsing PNG per face.

python -m flows.merge_masks <the flags of python -m stages.merge_masks>
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._stage import load_params, main_for
from stages import merge_masks as stage


# Compute, not I/O: a failure here is a bug or bad input, so it is not retried.
@task(name="run-merge_masks", cache_policy=NO_CACHE)
def run_merge_masks(
    params: dict[str, Any],
    *,
    raw: str,
    out: str,
    smoke_test: bool,
) -> dict[str, Any]:
    return stage.run(params, raw=raw, out=out, smoke_test=smoke_test)


@flow(name="merge_masks", log_prints=True)
def merge_masks_flow(
    params_path: str = "params.yaml",
    *,
    raw: str,
    out: str,
    smoke_test: bool = False,
) -> dict[str, Any]:
    params = load_params(params_path, "merge_masks")
    summary = run_merge_masks(params, raw=raw, out=out, smoke_test=smoke_test)
    print(f"merge_masks: {summary}")
    return summary


def main(argv: list[str] | None = None) -> int:
    return main_for(stage.build_parser, merge_masks_flow, argv)


if __name__ == "__main__":
    raise SystemExit(main())
