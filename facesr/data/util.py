"""Small helpers the data stages share: checksums, progress bars, pools (atomic folders: facesr.fileio)."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def progress(iterable: Iterable, *, total: int | None = None, desc: str = "", unit: str = "img"):
    """tqdm, off when FACESR_NO_PROGRESS=1 or stderr is not a terminal (logs stay readable)."""
    from tqdm import tqdm

    off = os.environ.get("FACESR_NO_PROGRESS") == "1" or not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=off)


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
