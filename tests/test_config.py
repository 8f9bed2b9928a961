"""facesr.config: a stage's section merged with the selected profile's section."""

from pathlib import Path

import pytest
import yaml

from facesr.config import ParamsError, load_params, load_section

REPO = Path(__file__).resolve().parents[1]
STAGES = ["download", "merge_masks", "downscale", "train", "train_gan", "evaluate", "report"]


def _write(root: Path, params: str, **profiles: str) -> Path:
    (root / "profiles").mkdir()
    for name, text in profiles.items():
        (root / "profiles" / f"{name}.yaml").write_text(text)
    (root / "params.yaml").write_text(params)
    return root / "params.yaml"


def test_profile_overrides_only_the_keys_it_names(tmp_path):
    params = _write(tmp_path, "profile: big\ntrain:\n  loop: {steps: 10, lr: 0.1}\n  keep: 1\n",
                    big="train:\n  loop: {steps: 99}\n")
    assert load_section(params, "train") == {"loop": {"steps": 99, "lr": 0.1}, "keep": 1}


def test_a_profile_argument_wins_over_the_files_profile_key(tmp_path):
    params = _write(tmp_path, "profile: big\ntrain:\n  loop: {steps: 10}\n",
                    big="train:\n  loop: {steps: 99}\n", small="train:\n  loop: {steps: 2}\n")
    assert load_section(params, "train", profile="small") == {"loop": {"steps": 2}}
    with pytest.raises(ParamsError, match="profile 'huge'"):
        load_section(params, "train", profile="huge")


def test_a_profile_may_add_a_variant_but_not_a_stray_key(tmp_path):
    params = _write(tmp_path, "profile: big\ntrain:\n  variants:\n    a: {model: srresnet}\n",
                    big="train:\n  variants:\n    b: {model: method1}\n")
    assert load_section(params, "train")["variants"] == {"a": {"model": "srresnet"}, "b": {"model": "method1"}}
    (tmp_path / "profiles" / "big.yaml").write_text("train:\n  variants:\n    a: {modell: x}\n")
    with pytest.raises(ParamsError, match=r"train\.variants\.a\.modell: not a key"):
        load_section(params, "train")


def test_without_a_profile_key_the_section_is_as_written(tmp_path):
    params = _write(tmp_path, "train: {steps: 10}\n")
    assert load_section(params, "train") == {"steps": 10}


@pytest.mark.parametrize(("profiles", "message"), [
    ({}, r"profile 'big': .*profiles/big\.yaml not found"),
    ({"big": "report: {}\n"}, r"big\.yaml: no 'train:' section \(write 'train: \{\}'"),
    ({"big": "train:\n  stepz: 5\n"}, r"big\.yaml: train\.stepz: not a key of params\.yaml"),
])
def test_bad_profile_names_the_file_and_the_problem(tmp_path, profiles, message):
    params = _write(tmp_path, "profile: big\ntrain: {steps: 10}\n", **profiles)
    with pytest.raises(ParamsError, match=message):
        load_section(params, "train")


def test_profile_name_cannot_leave_the_profiles_folder(tmp_path):
    params = _write(tmp_path, "profile: ../params\ntrain: {steps: 10}\n")
    with pytest.raises(ParamsError, match="profile must be the name of a file"):
        load_section(params, "train")


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "profiles").glob("*.yaml")))
def test_every_shipped_profile_has_every_stage_section_and_loads(name, tmp_path):
    # dvc.yaml tracks profiles/${profile}.yaml:[<stage>] for every stage, so DVC needs them all
    assert set(yaml.safe_load((REPO / "profiles" / f"{name}.yaml").read_text())) == set(STAGES)
    data = load_params(REPO / "params.yaml")
    data["profile"] = name
    params = _write(tmp_path, yaml.safe_dump(data), **{name: (REPO / "profiles" / f"{name}.yaml").read_text()})
    for stage in STAGES:
        assert isinstance(load_section(params, stage), dict)


def test_params_yaml_selects_the_demo_profile_which_changes_nothing():
    data = load_params(REPO / "params.yaml")
    assert data["profile"] == "demo"
    assert load_section(REPO / "params.yaml", "train") == data["train"]


def test_shared_keys_come_from_params_yaml_alone(tmp_path):
    from facesr.config import load_shared

    params = _write(tmp_path, "profile: big\nmlflow: {experiment: e}\ntrain: {steps: 10}\n", big="train: {}\n")
    assert load_shared(params, "mlflow") == {"experiment": "e"} and load_shared(params, "profile") == "big"
    (tmp_path / "profiles" / "big.yaml").write_text("train: {}\nmlflow: {experiment: other}\n")
    with pytest.raises(ParamsError, match=r"big\.yaml: 'mlflow:' is set in params\.yaml only"):
        load_shared(params, "mlflow")
    with pytest.raises(ParamsError, match="'train' is not a shared key"):
        load_shared(params, "train")
    (tmp_path / "params.yaml").write_text("train: {steps: 10}\n")
    assert load_shared(params, "profile") is None
    with pytest.raises(ParamsError, match=r"params\.yaml: no 'mlflow:' section at the top level"):
        load_shared(params, "mlflow")


def test_no_profile_repeats_its_own_name_or_the_mlflow_section():
    for path in (REPO / "profiles").glob("*.yaml"):
        data = load_params(path)
        assert "mlflow" not in data and not any("mlflow" in (s or {}) for s in data.values()), path.name
