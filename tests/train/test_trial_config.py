"""Trial expansion and typed configs: variants x search grid, overrides, smoke sizes, clear errors."""

import copy

import pytest
import yaml

from facesr.config import ParamsError, RunContext, load_context, load_section
from facesr.train.config import ContentLoop, GanLoop, parse_stage
from tests.conftest import REPO

SHARED = {"context": load_context(REPO / "params.yaml")}


def section(**variant_loop) -> dict:
    sec = load_section(REPO / "params.yaml", "train", profile="demo")
    sec["variants"]["srresnet_long"] = {"model": "srresnet", "model_args": {"num_feat": 8},
                                        "registered_name": "b", "loop": variant_loop}
    sec["search"]["seed"] = [0, 1]
    return sec


def test_a_variant_overrides_the_loop_for_its_own_trials_only():
    config = parse_stage(section(steps=165), stage="train", gan=False, smoke_test=False, **SHARED)
    steps = {(t.variant, t.loop.seed): t.loop.steps for t in config.trials}
    assert steps == {(v, s): 165 if v == "srresnet_long" else 600
                     for v in ("srresnet", "method1", "srresnet_long") for s in (0, 1)}
    assert [t.variant for t in config.trials][:2] == ["srresnet", "srresnet"]  # the file's variant order
    assert all(isinstance(t.loop, ContentLoop) and t.loop.lr == 2.5e-4 for t in config.trials)
    assert len({t.params_hash for t in config.trials}) == 6


def test_smoke_test_sizes_win_over_a_variants_overrides():
    config = parse_stage(section(steps=165), stage="train", gan=False, smoke_test=True, **SHARED)
    assert {t.loop.steps for t in config.trials} == {4}


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["variants"]["srresnet_long"]["loop"].update(stepz=1),
     r"params\.yaml: train\.variants\.srresnet_long\.loop: stepz not a training setting \(valid: batch_size"),
    (lambda s: s["loop"].update(precision="fp16"),
     r"train\.loop \(variant srresnet\)\.precision: 'fp16' is not one of fp32, bf16"),
    (lambda s: s["loop"]["lr_schedule"].update(name="step"),
     r"lr_schedule\.name: 'step' is not one of none, multistep, cosine"),
    (lambda s: s["search"].update(lr=["2e-4"]), r"\.lr: expected a number, got '2e-4' \(YAML reads 2e-4 as a string"),
    (lambda s: s["loop"].update(batch_size=0), r"\.batch_size: 0 is less than 1"),
    (lambda s: s["loop"].pop("hflip"), r"train\.loop \(variant srresnet\): missing key\(s\) hflip"),
    (lambda s: s["select"].update(mode="best"), r"train\.select\.mode: 'best' is not one of max, min"),
    (lambda s: s["variants"]["method1"].pop("model"), r"train\.variants\.method1: missing key\(s\) model"),
    (lambda s: s.pop("select"), r"train: missing key\(s\) select"),
    (lambda s: s.update(mlflow={"experiment": "x"}), r"train: unknown key\(s\) mlflow"),  # top-level now
    (lambda s: s["resources"].update(workers_per_trial=3),
     r"params\.yaml: train\.loop\.batch_size: 4 \(variant srresnet\) is not divisible by "
     r"train\.resources\.workers_per_trial 3"),
    (lambda s: s["resources"].update(workers_per_trial=0), r"train\.resources\.workers_per_trial: 0 is less than 1"),
])
def test_bad_params_name_the_file_the_key_and_the_allowed_values(edit, message):
    sec = copy.deepcopy(section())
    edit(sec)
    with pytest.raises(ParamsError, match=message):
        parse_stage(sec, stage="train", gan=False, smoke_test=False, source="params.yaml", **SHARED)


def test_workers_per_trial_defaults_to_one_and_splits_the_global_batch():
    sec = copy.deepcopy(section())
    assert parse_stage(sec, stage="train", gan=False, smoke_test=False, **SHARED).resources.workers_per_trial == 1
    sec["resources"] = {"cpus_per_trial": 1, "gpus_per_trial": 0}  # a file without the key: one worker
    assert parse_stage(sec, stage="train", gan=False, smoke_test=False, **SHARED).resources.workers_per_trial == 1
    sec["resources"]["workers_per_trial"] = 4
    config = parse_stage(sec, stage="train", gan=False, smoke_test=False, **SHARED)
    assert config.resources.workers_per_trial == 4 and {t.loop.batch_size for t in config.trials} == {4}


def test_the_gan_section_parses_to_gan_trials_without_a_model():
    sec = load_section(REPO / "params.yaml", "train_gan", profile="demo")
    config = parse_stage(sec, stage="train_gan", gan=True, smoke_test=False, **SHARED)
    (trial,) = config.trials
    assert isinstance(trial.loop, GanLoop) and trial.model is None and trial.loop.perceptual_net == "vgg16"
    sec["variants"]["method2"]["model"] = "method1"
    with pytest.raises(ParamsError, match="comes from --init"):
        parse_stage(sec, stage="train_gan", gan=True, smoke_test=False, **SHARED)


def test_every_profile_parses():
    for profile in sorted(p.stem for p in (REPO / "profiles").glob("*.yaml")):
        for stage, gan in (("train", False), ("train_gan", True)):
            parse_stage(load_section(REPO / "params.yaml", stage, profile=profile), stage=stage, gan=gan,
                        smoke_test=False, source=f"profiles/{profile}.yaml", **SHARED)


@pytest.mark.parametrize("edit, message", [
    # search.lr used to win over loop.lr silently
    (lambda s: s["loop"].update(lr=1.0e-3), r"params\.yaml: train: lr set in both search and loop \(the search value"),
    (lambda s: s["variants"]["srresnet_long"]["loop"].update(seed=3),
     r"train: seed set in both search and variants\.srresnet_long\.loop"),
])
def test_a_key_searched_and_set_is_an_error_naming_the_file_and_key(edit, message):
    sec = copy.deepcopy(section())
    edit(sec)
    with pytest.raises(ParamsError, match=message):
        parse_stage(sec, stage="train", gan=False, smoke_test=False, source="params.yaml", **SHARED)


def test_a_profile_setting_a_searched_key_in_loop_names_the_profile(tmp_path):
    import yaml

    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["profile"] = "p"
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "p.yaml").write_text("train:\n  loop: {lr: 1.0e-3}\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    # the searched key is gone from loop, so a profile that still sets loop.lr fails where it is read
    with pytest.raises(ParamsError, match=r"p\.yaml: train\.loop\.lr: not a key of params\.yaml"):
        load_section(tmp_path / "params.yaml", "train")


def test_the_run_context_rides_along():
    config = parse_stage(section(), stage="train", gan=False, smoke_test=False, **SHARED)
    assert vars(config.context.mlflow) == {"tracking_uri": "sqlite:///mlflow.db", "experiment": "facesr"}
    assert config.context == RunContext("demo", config.context.mlflow)


def test_load_stage_names_params_yaml_and_the_profile_file(tmp_path):
    from facesr.train.config import load_stage

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "p.yaml").write_text("train:\n  select: {mode: best}\n")
    data = yaml.safe_load((REPO / "params.yaml").read_text()) | {"profile": "p"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=rf"^{tmp_path / 'params.yaml'} \+ {tmp_path / 'profiles' / 'p.yaml'}: "
                                          r"train\.select\.mode: 'best' is not one of max, min"):
        load_stage(tmp_path / "params.yaml", "train", gan=False, smoke_test=False)
    (tmp_path / "profiles" / "p.yaml").write_text("train:\n  select: {mode: min}\n")
    config = load_stage(tmp_path / "params.yaml", "train", gan=False, smoke_test=True)
    assert config.select.mode == "min" and config.context.profile == "p"
    assert config.trials[0].loop.steps == data["train"]["smoke_test"]["steps"]


def test_trial_names_come_from_the_search_keys_that_vary():
    config = parse_stage(section(), stage="train", gan=False, smoke_test=False, **SHARED)
    assert config.labels == ("seed0", "seed1") * 3 and config.points[1] == {"lr": 2.5e-4, "seed": 1}
    sec = section()
    sec["search"]["lr"] = [2.5e-4, 1.0e-5]
    config = parse_stage(sec, stage="train", gan=False, smoke_test=False, **SHARED)
    assert config.labels[:4] == ("seed0-lr0.00025", "seed1-lr0.00025", "seed0-lr1e-05", "seed1-lr1e-05")
    demo = parse_stage(load_section(REPO / "params.yaml", "train", profile="demo"), stage="train", gan=False,
                       smoke_test=False, **SHARED)
    assert demo.labels == ("seed0", "seed0")  # one point: nothing varies, the seed names it
    sec["search"] = {"seed": [0, 0], "lr": [2.5e-4]}
    with pytest.raises(ParamsError, match=r"train\.search: two search points give the same trial name \(seed0, seed0\)"):
        parse_stage(sec, stage="train", gan=False, smoke_test=False, source="params.yaml", **SHARED)
