"""Registry, build_model errors, what generators declare, and the exported-generator file."""

from __future__ import annotations

import pytest
import torch

from facesr.models import (
    GENERATOR_FORMAT,
    MODELS,
    GeneratorFileError,
    ModelConfigError,
    build_model,
    load_generator,
    register_model,
    save_generator,
)

SMALL_M1 = {"num_feat": 16, "num_block": 2, "prior_feat": 16, "prior_res_blocks": 1, "num_hourglass": 1,
            "hourglass_depth": 2}


def test_registry_names():
    assert set(MODELS) == {"bicubic", "srresnet", "method1", "discriminator"}


def test_spec_holds_every_constructor_argument():
    model = build_model("srresnet", num_feat=8)
    assert model.spec == {"model": "srresnet", "model_args": {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8,
                                                               "num_block": 16, "upscale": 8,
                                                               "image_residual": False}}


def test_unknown_name_lists_valid_models():
    with pytest.raises(ModelConfigError, match="unknown model 'esrgan'.*bicubic, discriminator, method1, srresnet"):
        build_model("esrgan")


def test_unknown_argument_lists_valid_args():
    with pytest.raises(ValueError, match="srresnet.*num_feats.*valid model_args: num_in_ch, num_out_ch, num_feat"):
        build_model("srresnet", num_feats=8)


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("srresnet", {"upscale": 3}, "power of two"),
        ("srresnet", {"num_block": 0}, "num_block must be a positive integer"),
        ("method1", {"attention": "relu"}, "attention must be one of softmax, sigmoid, none"),
        ("method1", {"prior": "yes"}, "prior must be true or false"),
        ("discriminator", {"input_size": 100}, "multiple of 16"),
    ],
)
def test_bad_values(name, args, message):
    with pytest.raises(ModelConfigError, match=message):
        build_model(name, **args)


def test_duplicate_registration_is_refused():
    with pytest.raises(ModelConfigError, match="already registered"):
        register_model("srresnet")(torch.nn.Identity)


def test_generators_declare_whether_they_predict_parsing():
    """Known from the class (or its prior argument) without a forward pass."""
    assert MODELS["bicubic"].predicts_parsing is False and MODELS["srresnet"].predicts_parsing is False
    assert build_model("method1", **SMALL_M1).predicts_parsing is True
    assert build_model("method1", **SMALL_M1, prior=False).predicts_parsing is False


@pytest.mark.parametrize(("name", "args"), [("srresnet", {"num_feat": 8, "num_block": 1}), ("method1", SMALL_M1),
                                            ("bicubic", {})])
def test_save_load_round_trip(tmp_path, name, args):
    torch.manual_seed(0)
    model = build_model(name, **args).train()
    # a few train-mode passes move the BN running stats off their init, so buffers are checked too
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(2, 3, 16, 16))
    model.eval()
    path = tmp_path / "sub" / f"{name}.pt"
    save_generator(path, model, params={"lr": 1.0e-4, "path": tmp_path}, metrics={"psnr": torch.tensor(24.5)},
                   extra={"step": 3})
    assert not [p for p in path.parent.iterdir() if p.name != path.name], "temp file left behind"
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["format"] == GENERATOR_FORMAT and raw["model"] == name
    loaded, meta = load_generator(path)
    assert not loaded.training
    assert meta["model_args"] == model.spec["model_args"]
    assert meta["params"] == {"lr": 1.0e-4, "path": str(tmp_path)}
    assert meta["metrics"]["psnr"] == pytest.approx(24.5)
    assert meta["extra"] == {"step": 3}
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).sr, model(x).sr, rtol=0, atol=0)


def test_save_needs_spec(tmp_path):
    from facesr.models.srresnet import SRResNet

    with pytest.raises(GeneratorFileError, match="build_model"):
        save_generator(tmp_path / "x.pt", SRResNet(num_feat=4, num_block=1))


def test_save_refuses_unstorable_values(tmp_path):
    model = build_model("bicubic")
    with pytest.raises(GeneratorFileError, match="params.fn"):
        save_generator(tmp_path / "x.pt", model, params={"fn": print})
    assert not (tmp_path / "x.pt").exists()


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt: generator file not found"):
        load_generator(tmp_path / "nope.pt")
    with pytest.raises(GeneratorFileError):
        load_generator(tmp_path / "nope.pt")


def test_load_non_facesr_files(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(GeneratorFileError, match="garbage.pt: not a facesr generator file"):
        load_generator(garbage)
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": {}}, plain)
    with pytest.raises(GeneratorFileError, match="plain.pt: not a facesr generator file .format None"):
        load_generator(plain)


def test_load_unknown_model_and_bad_weights(tmp_path):
    model = build_model("srresnet", num_feat=8, num_block=1)
    path = save_generator(tmp_path / "g.pt", model)
    payload = torch.load(path, weights_only=True)
    payload["model"] = "esrgan"
    torch.save(payload, tmp_path / "unknown.pt")
    with pytest.raises(GeneratorFileError, match="unknown.pt: unknown model 'esrgan'; valid models"):
        load_generator(tmp_path / "unknown.pt")
    payload["model"] = "srresnet"
    payload["model_args"]["num_feat"] = 16
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(GeneratorFileError, match="mismatch.pt: weights do not fit model 'srresnet'"):
        load_generator(tmp_path / "mismatch.pt")


def test_pipeline_model_files_are_where_dvc_yaml_writes_them():
    """PIPELINE_MODEL_FILES (where `facesr upscale --model <name>` looks) agrees with dvc.yaml: the
    train stage writes models/train (the table models and every variant), train_gan models/gan."""
    import shlex
    from pathlib import Path

    import yaml

    from facesr.models.registry import (
        GAN_MODELS_DIR,
        PIPELINE_MODEL_FILES,
        TRAIN_MODELS_DIR,
        pipeline_model_file,
    )

    stages = yaml.safe_load((Path(__file__).resolve().parents[2] / "dvc.yaml").read_text())["stages"]
    for stage, folder in (("train", TRAIN_MODELS_DIR), ("train_gan", GAN_MODELS_DIR)):
        words = shlex.split(stages[stage]["cmd"])
        assert words[words.index("--models") + 1] == folder, stage
        assert folder in stages[stage]["outs"], stage
    writers = {TRAIN_MODELS_DIR: "train", GAN_MODELS_DIR: "train_gan"}
    assert {name: writers[str(Path(path).parent)] for name, path in PIPELINE_MODEL_FILES.items()} == {
        "srresnet": "train", "method1": "train", "method2": "train_gan"}
    assert pipeline_model_file("srresnet_wide") == "models/train/srresnet_wide.pt"
    assert pipeline_model_file("method2") == "models/gan/method2.pt"
