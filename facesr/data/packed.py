"""The prepared (packed) format of docs/DEVELOPING.md, and reading it.

    manifest.json                 {"format": "facesr-prepared/1", "kernel", "hr_size", "scale",
                                   "parts": [...], "splits": {"train": n, ...}, "sha256": {...}}
    {train,val,test}/ids.npy      int64 (N,)
    {train,val,test}/hr.npy       uint8 (N,128,128,3)
    {train,val,test}/lr.npy       uint8 (N,16,16,3)
    {train,val,test}/parsing.npy  uint8 (N,11,128,128), round(p*255) of the soft map

Plain .npy files: memory-mapped by numpy with no extra dependency, readable by any tool, and a
DataLoader worker touches only the pages of the items it reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facesr.data.errors import DataError
from facesr.data.util import read_manifest_file

FORMAT = "facesr-prepared/1"
SPLITS = ("train", "val", "test")
ARRAYS = ("ids", "hr", "lr", "parsing")


def read_manifest(root: str | Path) -> dict:
    return read_manifest_file(Path(root) / "manifest.json", FORMAT, "the downscale stage")


def load_split(root: str | Path, split: str) -> dict[str, np.ndarray]:
    """The arrays of one split, memory-mapped read-only: {"ids", "hr", "lr", "parsing"}."""
    root = Path(root)
    manifest = read_manifest(root)
    if split not in manifest["splits"]:
        raise DataError(f"{root}: no split {split!r} (has {', '.join(manifest['splits'])})")
    out = {}
    for name in ARRAYS:
        path = root / split / f"{name}.npy"
        if not path.is_file():
            raise DataError(f"{path}: missing from the prepared data")
        out[name] = np.load(path, mmap_mode="r")
    n = manifest["splits"][split]
    for name, a in out.items():
        if a.shape[0] != n:
            raise DataError(f"{root / split / (name + '.npy')}: {a.shape[0]} rows, manifest says {n}")
    return out
