"""Trial expansion: variants x search grid, a variant's own loop overrides, smoke-test sizes."""

import pytest

from facesr.config import ParamsError
from facesr.train.driver import build_trials


def section(**variant_loop) -> dict:
    return {
        "variants": {
            "srresnet": {"model": "srresnet", "model_args": {"num_feat": 8}, "registered_name": "a"},
            "srresnet_long": {"model": "srresnet", "model_args": {"num_feat": 8}, "registered_name": "b",
                              "loop": variant_loop},
        },
        "search": {"seed": [0, 1]},
        "select": {"metric": "val_psnr", "mode": "max"},
        "loop": {"steps": 100, "lr": 0.1, "seed": 0},
        "resources": {}, "max_failures": 0,
        "smoke_test": {"steps": 2},
    }


def test_a_variant_overrides_the_loop_for_its_own_trials_only():
    trials = build_trials(section(steps=165), where="train", smoke_test=False)
    steps = {(t["variant"], t["seed"]): t["steps"] for t in trials}
    assert steps == {("srresnet", 0): 100, ("srresnet", 1): 100, ("srresnet_long", 0): 165, ("srresnet_long", 1): 165}
    assert all(t["lr"] == 0.1 for t in trials)


def test_smoke_test_sizes_win_over_a_variants_overrides():
    trials = build_trials(section(steps=165), where="train", smoke_test=True)
    assert {t["steps"] for t in trials} == {2}


def test_an_unknown_override_names_the_variant_and_the_key():
    with pytest.raises(ParamsError, match=r"variants\.srresnet_long\.loop: stepz not a training setting"):
        build_trials(section(stepz=165), where="train", smoke_test=False)
