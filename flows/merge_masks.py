"""The `merge_masks` stage as the Prefect flow `merge_masks`: `python -m flows.merge_masks <the flags of python -m stages.merge_masks>`.

The command line is the stage's own (`stages.merge_masks.main`: the params parsed once into the typed config,
the same exit codes and JSON summary on stdout) with this flow as its runner; the flow's one task is
the stage's `run`. DVC decides what is stale, so no task caches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from facesr.config import MergeMasksParams
from flows import log_summary
from stages import merge_masks

merge_part_masks = task(merge_masks.run, name="merge-part-masks", cache_policy=NO_CACHE,
                        description="Merge every face's part masks into one parsing map.")


@flow(name="merge_masks", description=(merge_masks.__doc__ or "").splitlines()[0])
def merge_masks_flow(params: MergeMasksParams, raw: str | Path, out: str | Path, smoke_test: bool = False) -> dict[str, Any]:
    return log_summary("merge_masks", merge_part_masks(params, raw=raw, out=out, smoke_test=smoke_test))


def main(argv: list[str] | None = None) -> int:
    return merge_masks.main(argv, run=merge_masks_flow, prog="python -m flows.merge_masks")


if __name__ == "__main__":
    raise SystemExit(main())
