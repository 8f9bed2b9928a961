import random

import numpy as np
import pytest
import torch
from helpers import PARTS

from facesr.train.checkpoint import (
    CheckpointError,
    RunIdentity,
    load_checkpoint,
    resume_from,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from facesr.train.data import StepBatchSampler, TrainDataError, flip_batch, flip_permutation


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    save_checkpoint(tmp_path, {"params": {"a": 1}, "rng": rng_state()})
    first = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(load_checkpoint(tmp_path / "last.pt")["rng"])
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])


def _identity(**over) -> RunIdentity:
    return RunIdentity(**{"params": "p", "data": "d", "init": "", "code": "c", **over})


def test_resume_takes_the_latest_readable_checkpoint_of_the_same_identity(tmp_path):
    me = _identity()
    for step in (2, 4):
        save_checkpoint(tmp_path, {"identity": me.as_dict(), "step": step})
    assert load_checkpoint(tmp_path / "previous.pt")["step"] == 2
    assert resume_from(tmp_path, me)["step"] == 4
    # Ray's copy is newer than the local ones (a retry on a node that had an older workdir)
    save_checkpoint(tmp_path / "ray", {"identity": me.as_dict(), "step": 6})
    (tmp_path / "ray" / "last.pt").rename(tmp_path / "ray.pt")
    assert resume_from(tmp_path, me)["step"] == 6
    (tmp_path / "ray.pt").write_bytes(b"truncated")
    (tmp_path / "last.pt").write_bytes((tmp_path / "last.pt").read_bytes()[:100])
    assert resume_from(tmp_path, me)["step"] == 2
    # nothing of another identity is ever resumed, whatever its step
    for changed in ("params", "data", "init", "code"):
        assert resume_from(tmp_path, _identity(**{changed: "other"})) is None


def test_garbage_is_refused(tmp_path):
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
