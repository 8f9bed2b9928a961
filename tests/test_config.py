"""facesr.config: a stage's section merged with the selected profile's section."""

from pathlib import Path

import pytest
import yaml

from facesr.config import (
    DownloadParams,
    Mlflow,
    ParamsError,
    RunContext,
    as_params,
    load_context,
    load_download,
    load_downscale,
    load_evaluate,
    load_merge_masks,
    load_params,
    load_report,
    load_section,
)

REPO = Path(__file__).resolve().parents[1]
STAGES = ["download", "merge_masks", "downscale", "train", "train_gan", "evaluate", "report"]
LOADERS = {"download": load_download, "merge_masks": load_merge_masks, "downscale": load_downscale,
           "evaluate": load_evaluate, "report": load_report}


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
    # and each section parses into its typed config (the shipped values are all valid)
    for load in LOADERS.values():
        load(params)
    assert load_context(params) == RunContext(name, load_context(REPO / "params.yaml").mlflow)


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


def test_each_section_parses_into_its_dataclass_with_the_yaml_keys_as_fields():
    data = load_params(REPO / "params.yaml")
    for section, load in LOADERS.items():
        params = load(REPO / "params.yaml")
        # the YAML form comes back unchanged (MLflow logs it, and hashes it into params_hash)
        assert as_params(params) == data[section], section
    assert load_download(REPO / "params.yaml") == DownloadParams(**{**data["download"], "backoff_s": 1.0})
    assert load_context(REPO / "params.yaml") == RunContext("demo", Mlflow("sqlite:///mlflow.db", "facesr"))


# a bad key or value per section: (section, override, what the message says after "<file(s)>: ")
BAD = [
    ("download", {"source": "ftp"}, r"download\.source: 'ftp' is not one of url, archive, folder, synthetic"),
    ("download", {"workers": 0}, r"download\.workers: 0 is less than 1"),
    ("download", {"on_error": "ignore"}, r"download\.on_error: 'ignore' is not one of fail, skip"),
    ("download", {"backoff_s": "1s"}, r"download\.backoff_s: expected a number, got '1s'"),
    ("download", {"mirror": "x"}, r"download: unknown key\(s\) mirror"),
    ("merge_masks", {"parts": "skin"}, r"merge_masks\.parts: expected a list, got 'skin'"),
    ("merge_masks", {"mask_size": 0}, r"merge_masks\.mask_size: 0 is less than 1"),
    ("downscale", {"kernel": "lanczos"}, r"downscale\.kernel: 'lanczos' is not one of bicubic_aa, bicubic"),
    ("downscale", {"split": "random"}, r"downscale\.split: 'random' is not one of thesis, official, counts"),
    ("downscale", {"split_counts": [1, 2, 3]}, r"downscale\.split_counts: expected a mapping"),
    ("evaluate", {"device": "tpu"}, r"evaluate\.device: 'tpu' is not one of auto, cpu, cuda"),
    ("evaluate", {"precision": "fp16"}, r"evaluate\.precision: 'fp16' is not one of auto, fp32, bf16"),
    ("evaluate", {"batch_size": 0}, r"evaluate\.batch_size: 0 is less than 1"),
    ("evaluate", {"lpips_net": "squeeze"}, r"evaluate\.lpips_net: 'squeeze' is not one of alex, vgg"),
    ("report", {"crop": [36, 16, 0, 96]}, r"report\.crop: expected \[y, x, h, w\] with h, w >= 1, got \[36, 16, 0, 96\]"),
    ("report", {"crop": [36, 16, 48]}, r"report\.crop: expected \[y, x, h, w\]"),
    ("report", {"grid_faces": "six"}, r"report\.grid_faces: expected an integer, got 'six'"),
]


@pytest.mark.parametrize(("section", "override", "message"), BAD)
def test_a_bad_value_names_the_file_and_the_key(tmp_path, section, override, message):
    data = load_params(REPO / "params.yaml")
    data["profile"] = None
    data[section] |= override
    params = _write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=f"^{str(params).replace('.', '[.]')}: {message}"):
        LOADERS[section](params)


@pytest.mark.parametrize(("section", "override", "message"), BAD[:1] + BAD[-3:-2])
def test_a_bad_value_set_by_a_profile_names_both_files(tmp_path, section, override, message):
    data = load_params(REPO / "params.yaml")
    data["profile"] = "p"
    params = _write(tmp_path, yaml.safe_dump(data),
                    p=yaml.safe_dump({s: override if s == section else {} for s in STAGES}))
    with pytest.raises(ParamsError, match=rf"^{params} \+ {tmp_path / 'profiles' / 'p.yaml'}: {message}"):
        LOADERS[section](params)


def test_a_missing_key_is_named(tmp_path):
    data = load_params(REPO / "params.yaml")
    data["profile"] = None
    del data["merge_masks"]["workers"]
    params = _write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=r"params\.yaml: merge_masks: missing key\(s\) workers"):
        load_merge_masks(params)


def test_the_run_context_is_checked(tmp_path):
    params = _write(tmp_path, "profile: null\nmlflow: {experiment: e}\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: mlflow: missing key\(s\) tracking_uri"):
        load_context(params)
    (tmp_path / "params.yaml").write_text("profile: null\nmlflow: {tracking_uri: x, experiment: e, profile: p}\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: mlflow: unknown key\(s\) profile"):
        load_context(params)
    (tmp_path / "params.yaml").write_text("profile: 3\nmlflow: {tracking_uri: x, experiment: e}\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: profile: expected a str, got 3"):
        load_context(params)
    (tmp_path / "params.yaml").write_text("mlflow: {tracking_uri: x, experiment: e}\n")
    assert load_context(params) == RunContext(None, Mlflow("x", "e"))
