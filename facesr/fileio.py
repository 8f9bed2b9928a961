"""Atomic writes: a reader (or a crash) never sees a half-written file or output folder.

The one home of every "write beside, then rename" in the project. Files get the mode an ordinary
``open()`` would give them (0666 less the umask), not ``mkstemp``'s private 0600, so outputs,
checkpoints and caches are as readable as anything else the user writes. A killed process leaves
only hidden ``.<name>.tmp-*`` / ``.<name>.old-*`` siblings, which `sweep_stale` removes at the next
start of the job that writes `<name>`.

`read_json` is its reading counterpart for the project's JSON documents (manifests, eval.json): a
missing or unparsable file raises the caller's error type with the path in the message, and
`sha256_file` is the one digest of a file's bytes (downloads, weights, generator files, data trees).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    # os.umask can only be read by setting it, and a file another thread creates in between would get
    # the stand-in mask: read it from /proc where there is one (Linux)
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, fsync: bool = False) -> Iterator[IO]:
    """Open a temp file beside `path` for writing; on a clean exit it replaces `path` in one rename.

    `mode` is "wb" or "w" (UTF-8 text, written as given: newline=""). With `fsync`, the data reaches the
    disk before the rename, so a power cut leaves the old file or the new one, never an empty one
    (checkpoints). An exception removes the temp file and leaves `path` as it was.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        # UTF-8 whatever the locale: a C locale would make open() write ASCII and fail on an accent
        with os.fdopen(fd, mode, **({"newline": "", "encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (as given: CSV writers already chose their line endings) atomically to `path`."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)
    return Path(path)


def replace_dir(tmp: str | Path, target: str | Path) -> None:
    """Put the finished `tmp` folder at `target`; the old target is removed only once the new one is in place."""
    tmp, target = Path(tmp), Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)  # the old target goes back: never no target at all
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def temp_dir_beside(target: str | Path) -> Path:
    """An empty hidden folder beside `target`, on the same file system (for `replace_dir`)."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would become the output folder's mode
    return tmp


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temp folder beside `target`; on success it replaces `target` in one rename.

    A run that fails leaves no temp folder and never a `target` that looks complete; a previous
    good `target` stays in place until the new one is whole.
    """
    tmp = temp_dir_beside(target)
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sweep_stale(target: str | Path) -> list[Path]:
    """Remove what killed writers of `target` left beside it (``.<name>.tmp-*``, ``.<name>.old-*``).

    Called when a job that writes `target` starts: no other writer of the same target runs then
    (DVC locks the stage), so anything of that shape is a leftover. Returns what was removed.
    """
    target = Path(target).absolute()
    if not target.parent.is_dir():
        return []
    removed = []
    for kind in ("tmp", "old"):
        for stale in target.parent.glob(f".{glob.escape(target.name)}.{kind}-*"):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def read_json(path: str | Path, error: type[Exception] = ValueError, *, missing: str = "not found") -> Any:
    """The parsed JSON document at `path`; `error` (naming the file) when it is absent or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {missing}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc})") from exc


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex sha256 of the file at `path`, read in `chunk`-byte blocks (a 3 GB zip never sits in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
