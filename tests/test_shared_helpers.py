"""One home per helper: `facesr.device.resolve_device` and `facesr.data.util.progress`, and that
training, evaluation, inference and the data stages go through them."""

from __future__ import annotations

import io
import os

import pytest
import torch

from facesr.data.util import progress
from facesr.device import DeviceError, resolve_device

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")


def test_auto_picks_cuda_only_where_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == resolve_device(None) == expected
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(DeviceError, match=r"loop\.device: 'gpu' is not a torch device"):
        resolve_device("gpu", setting="loop.device")


@no_gpu
def test_cuda_without_a_gpu_names_the_setting_everywhere(tmp_path):
    from facesr.evaluate import evaluate
    from facesr.inference import ModelSourceError, load

    for want in ("cuda", "cuda:1"):
        with pytest.raises(DeviceError, match=f"loop.device: '{want}' asked for, but no CUDA GPU"):
            resolve_device(want, setting="loop.device")
    # the same rule, before any data or model is read
    with pytest.raises(DeviceError, match="evaluate.device: 'cuda' asked for"):
        evaluate(tmp_path / "no-data", {}, lpips_net="alex", batch_size=1, max_images=0, device="cuda",
                 precision="auto", channels_last="auto")
    with pytest.raises(ModelSourceError, match="no CUDA GPU"):
        load("bicubic", device="cuda")


@no_gpu
def test_training_uses_it(tmp_path):
    from train.helpers import identity, loop_params  # tests/train/helpers.py

    from facesr.train.loop import train

    trial = loop_params("srresnet", device="cuda")
    with pytest.raises(DeviceError, match="loop.device: 'cuda' asked for"):
        # the device is checked before the data is opened
        train(trial, data_root=tmp_path / "never-read", workdir=tmp_path / "w", identity=identity(trial))


@pytest.fixture()
def terminal():
    """A real pseudo-terminal for tqdm to write to: bars are shown only on a terminal."""
    master, slave = os.openpty()
    tty = os.fdopen(slave, "w")
    yield tty
    tty.close()
    os.close(master)


@pytest.mark.parametrize(("env", "shown"), [
    ({}, True),
    ({"TQDM_DISABLE": "1"}, False),
    ({"FACESR_NO_PROGRESS": "1"}, False),
    ({"FACESR_NO_PROGRESS": "0", "TQDM_DISABLE": ""}, True),
])
def test_progress_is_shown_on_a_terminal_unless_switched_off(monkeypatch, terminal, env, shown):
    monkeypatch.delenv("FACESR_NO_PROGRESS", raising=False)  # tests/conftest.py sets it for the session
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # read at each call, not once when tqdm is imported
    with progress(range(3), desc="t", file=terminal) as bar:
        assert bool(bar.disable) is (not shown)  # before the loop: a finished bar is closed, which disables it
        assert list(bar) == [0, 1, 2]
    with progress(total=3, file=terminal, enabled=False) as bar:
        assert bar.disable is True
    with progress(total=3, file=io.StringIO()) as bar:  # not a terminal: a log stays readable
        assert bar.disable is True
