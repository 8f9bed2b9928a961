"""Small helpers the data stages share: atomic output folders, checksums, progress bars, pools."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
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


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temp folder beside `target`; on success it replaces `target` in one rename.

    A run that fails (or is killed) leaves only a hidden `.name.tmp-PID` folder, never a `target`
    that looks complete; a previous good `target` stays in place until the new one is whole.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


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
