"""A trial's identity, and resumable checkpoints that are only ever resumed by the same identity.

A checkpoint holds everything a run needs to continue as if it had never stopped: the trial
config, its identity, the step, every module/optimizer/scheduler state, the RNG states (python,
numpy, torch CPU and CUDA) and the curve history. Only tensors, numbers, strings, lists and dicts go
in, so ``torch.load(..., weights_only=True)`` reads it back. The previous checkpoint is kept beside
the last one: a truncated `last.pt` falls back to `previous.pt`, then to the copy Ray kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facesr.fileio import atomic_open

FORMAT = "facesr-train-checkpoint/2"
LAST, PREVIOUS, FROM_RAY = "last.pt", "previous.pt", "ray.pt"
log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or of another format."""


@dataclass(frozen=True)
class RunIdentity:
    """Everything that determines a trial's result; `fingerprint` names the run.

    params: the trial config's hash; data: the prepared data's digest; init: the sha256 of the file
    the GAN starts from ("" otherwise); code: the digest of the library code the loop runs.
    """

    params: str
    data: str
    init: str
    code: str

    @property
    def fingerprint(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def as_dict(self) -> dict[str, str]:
        return {**dataclasses.asdict(self), "fingerprint": self.fingerprint}

    def tags(self) -> dict[str, str]:
        return {"run_fingerprint": self.fingerprint, "data_sha256": self.data, "code_sha256": self.code,
                "init_sha256": self.init or "-"}

    def differs(self, other: dict[str, str]) -> list[str]:
        return [k for k in ("params", "data", "init", "code") if other.get(k) != getattr(self, k)]


def rng_state() -> dict[str, Any]:
    """Every RNG the loop draws from, in a weights_only-safe form (no numpy scalars, no tuples of objects)."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "python": {"version": int(py_version), "internal": [int(x) for x in py_internal],
                   "gauss": None if py_gauss is None else float(py_gauss)},
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(workdir: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` as `<workdir>/last.pt` (fsynced); the one it replaces becomes previous.pt."""
    workdir = Path(workdir)
    with atomic_open(workdir / LAST, "wb", fsync=True) as fh:
        torch.save({"format": FORMAT, **state}, fh)
        if (workdir / LAST).exists():
            os.replace(workdir / LAST, workdir / PREVIOUS)
    return workdir / LAST


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    return ckpt


def resume_from(workdir: str | Path, identity: RunIdentity,
                map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The latest usable checkpoint of this identity among last.pt, previous.pt and ray.pt, or None.

    An unreadable file or one of another identity is skipped, and the log says why: a trial
    never continues from weights that other data, code, params or init produced.
    """
    best = None
    for name in (LAST, PREVIOUS, FROM_RAY):
        path = Path(workdir) / name
        if not path.is_file():
            continue
        try:
            ckpt = load_checkpoint(path, map_location)
        except CheckpointError as exc:
            log.warning("%s; trying the previous checkpoint", exc)
            continue
        if changed := identity.differs(ckpt.get("identity", {})):
            log.warning("%s: written by run %s, this trial is run %s (%s changed): not resumed from it",
                        path, ckpt.get("identity", {}).get("fingerprint"), identity.fingerprint, ", ".join(changed))
            continue
        if best is None or ckpt["step"] > best["step"]:
            best = ckpt
    if best is not None:
        log.info("%s: resuming run %s from step %d", workdir, identity.fingerprint, best["step"])
    return best
