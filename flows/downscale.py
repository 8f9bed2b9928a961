"""The `downscale` stage as the Prefect flow `downscale`: `python -m flows.downscale <the flags of python -m stages.downscale>`.

The command line is the stage's own (`stages.downscale.main`: the params parsed once into the typed config,
the same exit codes and JSON summary on stdout) with this flow as its runner; the flow's one task is
the stage's `run`. DVC decides what is stale, so no task caches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from facesr.config import DownscaleParams
from flows import log_summary
from stages import downscale

pack_faces = task(downscale.run, name="pack-faces", cache_policy=NO_CACHE,
                  description="Downscale, split and pack the faces.")


@flow(name="downscale", description=(downscale.__doc__ or "").splitlines()[0])
def downscale_flow(params: DownscaleParams, raw: str | Path, merged: str | Path, out: str | Path,
                   smoke_test: bool = False) -> dict[str, Any]:
    return log_summary("downscale", pack_faces(params, raw=raw, merged=merged, out=out, smoke_test=smoke_test))


def main(argv: list[str] | None = None) -> int:
    return downscale.main(argv, run=downscale_flow, prog="python -m flows.downscale")


if __name__ == "__main__":
    raise SystemExit(main())
