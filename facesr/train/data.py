"""Batches for the training loops, as a pure function of (seed, step).

The batch order and the flips of step ``s`` depend only on the trial seed and ``s``, never on
how many steps ran before in this process. That is what makes a resumed run see exactly the
batches an uninterrupted one would, without saving any data-loader state.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class TrainDataError(ValueError):
    """The prepared data cannot feed the configured training (too few faces, missing manifest)."""


def _generator(*keys: int) -> torch.Generator:
    seed = 0
    for key in keys:
        # a fixed mixing (not Python's hash) so the stream is the same on every machine
        seed = (seed * 1_000_003 + int(key) + 1) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


class StepBatchSampler(Sampler[list[int]]):
    """Index batches for steps ``start+1 .. steps``; each epoch is a seeded permutation, last partial batch dropped."""

    def __init__(self, num_items: int, batch_size: int, seed: int, steps: int, start: int = 0,
                 where: str = "train split"):
        if num_items < batch_size:
            raise TrainDataError(f"{where}: {num_items} faces, fewer than batch_size {batch_size}")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.steps, self.start = steps, start
        self.per_epoch = num_items // batch_size

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def batch_of(self, step: int) -> list[int]:
        """Indices of 1-based `step`."""
        epoch, pos = divmod(step - 1, self.per_epoch)
        perm = torch.randperm(self.num_items, generator=_generator(self.seed, epoch))
        return perm[pos * self.batch_size:(pos + 1) * self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start + 1, self.steps + 1):
            yield self.batch_of(step)


def flip_permutation(parts: list[str]) -> list[int]:
    """Channel order of the parsing maps after a horizontal flip: l_* and r_* trade places."""
    index = {name: i for i, name in enumerate(parts)}
    perm = []
    for name in parts:
        if name.startswith("l_") and f"r_{name[2:]}" in index:
            perm.append(index[f"r_{name[2:]}"])
        elif name.startswith("r_") and f"l_{name[2:]}" in index:
            perm.append(index[f"l_{name[2:]}"])
        else:
            perm.append(index[name])
    return perm


def flip_batch(batch: dict[str, torch.Tensor], *, seed: int, step: int, perm: list[int]) -> dict[str, torch.Tensor]:
    """Flip about half the faces of `batch` horizontally, chosen by (seed, step); parsing channels swap sides."""
    n = batch["lr"].shape[0]
    mask = torch.rand(n, generator=_generator(seed, step, 7)) < 0.5
    if not mask.any():
        return batch
    out = dict(batch)
    for key in ("lr", "hr", "parsing"):
        flipped = batch[key][mask].flip(-1)
        if key == "parsing":
            flipped = flipped[:, perm]
        value = batch[key].clone()
        value[mask] = flipped
        out[key] = value
    return out
