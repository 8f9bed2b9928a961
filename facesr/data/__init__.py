"""Data: the official layout, safe image reading, synthetic faces, download, mask merging,
downscaling into the packed format, and the torch Dataset over it.

Import the torch-free parts from their modules (`facesr.data.merge`, ...); `FaceSRDataset` is loaded
on first use so `import facesr.data` does not pull torch into the CLI.
"""

from __future__ import annotations

from facesr.data.errors import BadFile, DataError
from facesr.data.packed import load_split, read_manifest

__all__ = ["BadFile", "DataError", "FaceSRDataset", "load_split", "read_manifest", "mirror_permutation"]


def __getattr__(name: str):
    if name in ("FaceSRDataset", "mirror_permutation"):
        from facesr.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'facesr.data' has no attribute {name!r}")
