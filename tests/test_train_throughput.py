"""benchmarks/train_throughput.py reads each profile's sizes; benchmarks/train_step.py times and counts a step."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _module(name: str):
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sizes_are_the_profiles_own():
    from facesr.config import load_section

    sizes = _module("train_throughput").profile_sizes("mini-cpu")
    train = load_section(REPO / "params.yaml", "train", profile="mini-cpu")
    assert sizes["method1"]["model_args"] == train["variants"]["method1"]["model_args"]
    assert sizes["srresnet"]["batch"] == train["loop"]["batch_size"]
    assert sizes["discriminator"]["disc_args"] == load_section(REPO / "params.yaml", "train_gan",
                                                               profile="mini-cpu")["loop"]["discriminator_args"]


@pytest.mark.parametrize("model", ["srresnet", "discriminator"])
def test_a_step_is_timed_and_its_flops_counted(model):
    row = _module("train_step").measure(model, {"num_feat": 4, "num_block": 1}, {"num_feat": 4}, 2, "cpu", "fp32",
                                        True, steps=1, warmup=1)
    assert row["images_per_s"] > 0 and row["gflop_per_step"] > 0 and row["gflop_per_s"] > 0
    assert (row["precision"], row["channels_last"], row["batch"]) == ("fp32", True, 2)
