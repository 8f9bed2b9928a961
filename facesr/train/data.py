"""Batches for the training loops, as a pure function of (seed, step).

The batch order and the flips of step ``s`` depend only on the trial seed and ``s``, never on
how many steps ran before in this process. That is what makes a resumed run see exactly the
batches an uninterrupted one would, without saving any data-loader state.

A trial of N workers draws the same global batch of ``batch_size`` faces per step (and the same
flips); worker ``r`` takes the contiguous rows ``r*b .. (r+1)*b - 1`` of it, ``b = batch_size / N``
(`Shard`), so N workers together train on exactly the batches one worker would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Shard:
    """Worker `rank` of `world_size` in a multi-worker trial: which rows of each global batch it trains on."""

    rank: int
    world_size: int

    def rows(self, global_size: int) -> slice:
        """This worker's contiguous share of a global batch of `global_size` rows (divisible by world_size)."""
        per = global_size // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)


class StepBatchSampler(Sampler[list[int]]):
    """Index batches for steps ``start+1 .. steps``; each epoch is a seeded permutation, last partial batch dropped.

    With a `shard`, each batch is that worker's rows of the global batch of `batch_size`.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, steps: int, start: int = 0,
                 where: str = "train split", shard: Shard | None = None):
        if num_items < batch_size:
            raise TrainDataError(f"{where}: {num_items} faces, fewer than batch_size {batch_size}")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.steps, self.start, self.shard = steps, start, shard
        self.per_epoch = num_items // batch_size

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def batch_of(self, step: int) -> list[int]:
        """Indices of 1-based `step` (this shard's rows of them, with a shard)."""
        epoch, pos = divmod(step - 1, self.per_epoch)
        perm = torch.randperm(self.num_items, generator=_generator(self.seed, epoch))
        batch = perm[pos * self.batch_size:(pos + 1) * self.batch_size]
        if self.shard is not None:
            batch = batch[self.shard.rows(self.batch_size)]
        return batch.tolist()

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


def flip_batch(batch: dict[str, torch.Tensor], *, seed: int, step: int, perm: list[int],
               shard: Shard | None = None) -> dict[str, torch.Tensor]:
    """Flip about half the faces of `batch` horizontally, chosen by (seed, step); parsing channels swap sides.

    With a `shard`, `batch` is that worker's rows of the global batch: the flips are drawn for the
    whole global batch and the shard keeps its rows' share, so they match a one-worker run's.
    """
    n = batch["lr"].shape[0]
    if shard is None:
        mask = torch.rand(n, generator=_generator(seed, step, 7)) < 0.5
    else:
        draws = torch.rand(n * shard.world_size, generator=_generator(seed, step, 7))
        mask = draws[shard.rows(n * shard.world_size)] < 0.5
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
