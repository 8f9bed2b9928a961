"""Small helpers the data stages share: progress bars, pools (atomic folders and checksums: facesr.fileio)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

# re-exported for the data stages that import it from here; the one definition is facesr.fileio's

# tqdm's own switch and facesr's older name for it (tests and CI set FACESR_NO_PROGRESS)
PROGRESS_OFF_ENV = ("TQDM_DISABLE", "FACESR_NO_PROGRESS")


def read_manifest_file(path: Path, fmt: str, producer: str) -> dict:
    """A stage's manifest.json, checked to be of format `fmt`; `producer` names the stage that writes it."""
    from facesr.data.errors import DataError
    from facesr.fileio import read_json

    manifest = read_json(path, DataError, missing=f"not found (is {path.parent} the output of {producer}?)")
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise DataError(f"{path}: format {found!r}, expected {fmt!r}")
    return manifest


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "img",
             enabled: bool = True, **tqdm_args: Any):
    """The progress bar of every facesr loop: a tqdm on stderr, shown only where stderr is a
    terminal (tqdm's ``disable=None``), so logs stay readable.

    `TQDM_DISABLE` or `FACESR_NO_PROGRESS` set to anything but "" or "0" hides it, read at each
    call (tqdm reads its own `TQDM_*` variables once, at import, and an explicit `disable` overrides
    them); so does ``enabled=False``. Without `iterable` it is a manual bar (``update(n)``, a
    context manager). `tqdm_args` go to tqdm as they are (``initial``, ``unit_scale``, ...).
    """
    from tqdm import tqdm

    off = not enabled or any(os.environ.get(key, "") not in ("", "0") for key in PROGRESS_OFF_ENV)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=True if off else None, **tqdm_args)


def ordered_map(fn: Callable[[Any], Any], items: list, workers: int, *, desc: str) -> Iterator[Any]:
    """fn over items in input order, in a process pool when workers > 1.

    Results come back in input order whatever the scheduling, which is what makes outputs
    byte-identical across runs and worker counts.
    """
    if workers <= 1 or len(items) < 2:
        yield from progress(map(fn, items), total=len(items), desc=desc)
        return
    chunksize = max(1, min(32, len(items) // (workers * 8)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from progress(pool.map(fn, items, chunksize=chunksize), total=len(items), desc=desc)
