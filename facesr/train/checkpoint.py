"""Resumable training checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint holds everything a run needs to continue as if it had never stopped: the model
name + args, the trial params, the step, every module/optimizer/scheduler/scaler state, the RNG
states (python, numpy, torch CPU and CUDA) and the curve history written so far. Only tensors,
numbers, strings, lists and dicts go in, so ``torch.load(..., weights_only=True)`` reads it back.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "facesr-train-checkpoint/1"
LAST = "last.pt"


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, of another format, or from a different trial config."""


def rng_state() -> dict[str, Any]:
    """Every RNG the loop draws from, in a weights_only-safe form (no numpy scalars, no tuples of objects)."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": int(py_version), "internal": [int(x) for x in py_internal],
                   "gauss": None if py_gauss is None else float(py_gauss)},
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """torch.save to a temp file beside `path`, fsync, then os.replace: a kill leaves the old file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(workdir: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` as the trial's last checkpoint (``<workdir>/last.pt``)."""
    return atomic_torch_save({"format": FORMAT, **state}, Path(workdir) / LAST)


def load_checkpoint(path: str | Path, *, params: dict[str, Any] | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint; with `params`, refuse one written by a trial with other params.

    Resuming with changed params would silently mix two experiments, so that is an error naming
    the keys that differ rather than a quiet restart.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    if params is not None and ckpt.get("params") != params:
        old = ckpt.get("params") or {}
        diff = sorted(k for k in set(old) | set(params) if old.get(k) != params.get(k))
        raise CheckpointError(f"{path}: written by a trial with different params ({', '.join(diff)}); "
                              "use another workdir or delete it to start over")
    return ckpt


def find_last(workdir: str | Path) -> Path | None:
    path = Path(workdir) / LAST
    return path if path.is_file() else None
