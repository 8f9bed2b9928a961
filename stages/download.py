"""DVC stage `download`: the dataset in the official CelebAMask-HQ layout, from any source.

Reads the `download:` section (source: url | archive | folder | synthetic; each key is commented in
params.yaml); docs/data.md has the layout, resuming, checksums and trust on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facesr.config import require
from stages._cli import command

KEYS = ("source", "url", "sha256", "archive", "folder", "synthetic_count", "synthetic_size", "seed",
        "retries", "backoff_s", "workers", "on_error")
SMOKE_FACES = 8
RETRIES = 2  # fetching is I/O: flows.stage reruns its task after a dropped connection (it resumes)


def run(params: dict[str, Any], *, out: str | Path, cache: str | Path | None = None,
        smoke_test: bool = False, source: str = "params.yaml") -> dict[str, Any]:
    """Fetch or make the faces.

    Args:
        out: output folder (gets CelebAMask-HQ/)
        cache: where the URL source keeps its zip and .part file (default <out>/../.download-cache)
        smoke_test: 8 synthetic faces whatever the source
    """
    from facesr.data.download import download

    require(params, *KEYS, where=f"{source}: download")
    kwargs = {k: params[k] for k in KEYS}
    if smoke_test:
        kwargs.update(source="synthetic", synthetic_count=SMOKE_FACES)
    return download(out, cache_dir=cache, **kwargs)


main = command(run)
if __name__ == "__main__":
    raise SystemExit(main())
