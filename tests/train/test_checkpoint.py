import random

import numpy as np
import pytest
import torch
from helpers import PARTS

from facesr.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from facesr.train.data import StepBatchSampler, TrainDataError, flip_batch, flip_permutation


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    save_checkpoint(tmp_path, {"params": {"a": 1}, "rng": rng_state()})
    first = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(load_checkpoint(tmp_path / "last.pt", params={"a": 1})["rng"])
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])


def test_checkpoint_of_other_params_or_garbage_is_refused(tmp_path):
    save_checkpoint(tmp_path, {"params": {"lr": 1.0e-4, "seed": 0}})
    with pytest.raises(CheckpointError, match="lr"):
        load_checkpoint(tmp_path / "last.pt", params={"lr": 2.0e-4, "seed": 0})
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(bad)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_batches_depend_only_on_seed_and_step():
    full = list(StepBatchSampler(10, 3, seed=5, steps=7))
    resumed = list(StepBatchSampler(10, 3, seed=5, steps=7, start=4))
    assert resumed == full[4:]
    assert full != list(StepBatchSampler(10, 3, seed=6, steps=7))
    # each epoch (3 batches of 3 from 10) holds distinct faces
    assert len({i for b in full[:3] for i in b}) == 9
    with pytest.raises(TrainDataError, match="fewer than batch_size"):
        StepBatchSampler(2, 3, seed=0, steps=1)


def test_flip_swaps_left_and_right_parsing_channels():
    perm = flip_permutation(PARTS)
    assert PARTS[perm[PARTS.index("l_eye")]] == "r_eye" and PARTS[perm[PARTS.index("nose")]] == "nose"
    batch = {"lr": torch.rand(16, 3, 16, 16), "hr": torch.rand(16, 3, 128, 128), "parsing": torch.rand(16, 11, 128, 128)}
    out = flip_batch(batch, seed=0, step=3, perm=perm)
    flipped = [i for i in range(16) if not torch.equal(out["hr"][i], batch["hr"][i])]
    assert 0 < len(flipped) < 16
    i = flipped[0]
    assert torch.equal(out["hr"][i], batch["hr"][i].flip(-1))
    assert torch.equal(out["parsing"][i, PARTS.index("r_eye")], batch["parsing"][i, PARTS.index("l_eye")].flip(-1))
    again = flip_batch(batch, seed=0, step=3, perm=perm)
    assert torch.equal(again["lr"], out["lr"])
