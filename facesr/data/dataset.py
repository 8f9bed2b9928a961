"""`FaceSRDataset`: the torch view of the prepared data (docs/DEVELOPING.md "Data")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from facesr.data.packed import load_split, read_manifest


def mirror_permutation(parts: list[str]) -> list[int]:
    """Channel order after a horizontal flip: l_x <-> r_x swapped by name, others fixed.

    The subject's left eye becomes the image's other side after a flip, so its channel must move to
    r_eye; keeping channels in place would teach the prior branch mirrored labels.
    """
    index = {p: i for i, p in enumerate(parts)}
    perm = []
    for p in parts:
        if p.startswith("l_") and "r_" + p[2:] in index:
            perm.append(index["r_" + p[2:]])
        elif p.startswith("r_") and "l_" + p[2:] in index:
            perm.append(index["l_" + p[2:]])
        else:
            perm.append(index[p])
    return perm


class FaceSRDataset(Dataset):
    """Items `{"lr": (3,16,16), "hr": (3,128,128), "parsing": (11,128,128), "id": int}`, float32 in [0,1].

    Args:
        root: a prepared folder (output of the downscale stage).
        split: "train", "val" or "test".
        hflip: flip each item horizontally with probability 0.5 (torch's RNG, so DataLoader workers
            seeded by torch give reproducible augmentations); l_/r_ parsing channels are swapped.
    """

    def __init__(self, root: str | Path, split: str, hflip: bool = False):
        self.root = Path(root)
        self.split = split
        self.hflip = hflip
        self.manifest = read_manifest(self.root)
        self.parts = list(self.manifest["parts"])
        self._perm = mirror_permutation(self.parts)
        self._arrays: dict[str, np.ndarray] | None = None
        self._len = int(self.manifest["splits"][split]) if split in self.manifest["splits"] else None
        if self._len is None:
            load_split(self.root, split)  # raises the clear error

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        # Opened lazily so a Dataset pickled into DataLoader workers maps the files in each worker.
        if self._arrays is None:
            self._arrays = load_split(self.root, self.split)
        return self._arrays

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_arrays"] = None
        return state

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> dict:
        if not -self._len <= i < self._len:
            raise IndexError(f"index {i} out of range for {self._len} items in {self.root}/{self.split}")
        a = self.arrays
        lr = np.array(a["lr"][i]).transpose(2, 0, 1)
        hr = np.array(a["hr"][i]).transpose(2, 0, 1)
        parsing = np.array(a["parsing"][i])  # a private copy: torch wants writable memory
        if self.hflip and bool(torch.rand(()) < 0.5):
            lr, hr = lr[:, :, ::-1], hr[:, :, ::-1]
            parsing = parsing[self._perm, :, ::-1]
        return {
            "lr": torch.from_numpy(np.ascontiguousarray(lr)).float().div_(255.0),
            "hr": torch.from_numpy(np.ascontiguousarray(hr)).float().div_(255.0),
            "parsing": torch.from_numpy(np.ascontiguousarray(parsing)).float().div_(255.0),
            "id": int(a["ids"][i]),
        }
