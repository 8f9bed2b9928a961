"""benchmarks/recipe_probe.py: the train stage's trial for one variant, with overrides, on CPU."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from facesr.config import ParamsError

REPO = Path(__file__).resolve().parents[2]


def _probe():
    spec = importlib.util.spec_from_file_location("recipe_probe", REPO / "benchmarks" / "recipe_probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_probe_trains_the_profiles_variant_with_overrides(prepared_small, tmp_path):
    out = tmp_path / "probe.json"
    argv = ["--data", str(prepared_small), "--profile", "mini-cpu", "--variant", "srresnet", "--smoke-test",
            "--set", "lr=1.0e-3", "--model-arg", "num_feat=8", "--model-arg", "num_block=1",
            "--threads", "1", "--out", str(out), "--workdir", str(tmp_path / "trial")]
    assert _probe().main(argv) == 0
    assert _probe().main(argv[:-2]) == 0      # a second run appends a row (fresh trial folder)
    rows = json.loads(out.read_text())
    assert len(rows) == 2
    row = rows[0]
    assert row["set"] == {"lr": 1.0e-3} and row["model_args"] == {"num_feat": 8, "num_block": 1}
    assert row["steps"] == 4                 # train.smoke_test.steps wins over the profile's 2,000
    assert math.isfinite(row["val"]["val_psnr"]) and row["val"]["val_psnr"] > 5
    ckpt = (tmp_path / "trial" / "generator.pt")
    assert ckpt.is_file()


def test_probe_names_a_setting_the_loop_lacks(prepared_small, tmp_path):
    with pytest.raises(ParamsError, match="--set learning_rate"):
        _probe().main(["--data", str(prepared_small), "--variant", "srresnet", "--smoke-test",
                       "--set", "learning_rate=1.0e-3", "--out", str(tmp_path / "p.json")])


def test_probe_names_a_variant_the_profile_lacks(prepared_small, tmp_path):
    with pytest.raises(ParamsError, match="no train variant 'method3'"):
        _probe().main(["--data", str(prepared_small), "--variant", "method3", "--smoke-test",
                       "--out", str(tmp_path / "p.json")])
