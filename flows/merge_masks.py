"""The `merge_masks` stage as the Prefect flow `merge_masks`: `python -m flows.merge_masks <the flags of python -m stages.merge_masks>`.

The command line parses the params once (as `python -m stages.merge_masks` does) and runs the flow on the
typed config; exit codes and the JSON summary on stdout are the stage's (stages._cli). DVC decides what
is stale, so no task caches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from facesr.config import MergeMasksParams, load_merge_masks
from stages import _cli, merge_masks


@task(name="merge-part-masks", cache_policy=NO_CACHE)
def merge_part_masks(
    params: MergeMasksParams, raw: str | Path, out: str | Path, smoke_test: bool
) -> dict[str, Any]:
    """Merge the masks of every face."""
    return merge_masks.run(params, raw=raw, out=out, smoke_test=smoke_test)


@flow(name="merge_masks", description=(merge_masks.__doc__ or "").splitlines()[0])
def merge_masks_flow(
    params: MergeMasksParams, raw: str | Path, out: str | Path, smoke_test: bool = False
) -> dict[str, Any]:
    summary = merge_part_masks(params, raw=raw, out=out, smoke_test=smoke_test)
    get_run_logger().info("merge_masks: %s", json.dumps(summary, default=str))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = merge_masks.parser("python -m flows.merge_masks").parse_args(argv)
    return _cli.report(
        lambda: merge_masks_flow(
            load_merge_masks(args.params), raw=args.raw, out=args.out, smoke_test=args.smoke_test
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
