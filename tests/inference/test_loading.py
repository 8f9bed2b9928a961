"""facesr.inference.loading: model sources (generator files, MLflow URIs and model folders, bare
names) and their errors, pickled MLflow models included (issue 15)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from inference_helpers import as_tensor
from PIL import Image

import facesr
from facesr.cli import main as cli_main
from facesr.inference import ModelSourceError
from facesr.models import build_model


class _Marker:
    """Unpickling this creates `path`: proof that a loader ran code from a file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch '{self.path}'",))


def _pickled_pytorch_model(folder: Path, payload) -> Path:
    """An MLflow pytorch model folder as `mlflow.pytorch.save_model` writes it (pickle format)."""
    import mlflow.pytorch

    mlflow.pytorch.save_model(payload, str(folder), serialization_format="pickle", pip_requirements=[])
    return folder


def test_a_pickled_mlflow_model_folder_is_refused_and_runs_nothing(tmp_path, capsys):
    """Issue 15: a crafted MLflow pytorch model whose data/model.pth runs a command when unpickled."""
    marker = tmp_path / "marker"
    folder = _pickled_pytorch_model(tmp_path / "evil", build_model("srresnet", num_feat=8, num_block=1))
    torch.save(_Marker(marker), folder / "data" / "model.pth")
    face = tmp_path / "face.png"
    Image.new("RGB", (16, 16), (120, 100, 90)).save(face)
    out = tmp_path / "out"
    rc = cli_main(["upscale", str(face), "-o", str(out), "--model", str(folder), "--device", "cpu"])
    err = capsys.readouterr().err
    assert not marker.exists(), "loading the model ran the command in its pickle"
    assert rc == 2 and not out.exists()
    assert str(folder) in err and "refused" in err and "--allow-pickle" in err, err
    with pytest.raises(ModelSourceError, match="allow_pickle=True") as exc:
        facesr.load(folder, device="cpu")
    assert str(folder) in str(exc.value)
    assert not marker.exists()


def test_old_pickled_registry_models_load_only_with_allow_pickle(trained_method1, tmp_path, synthetic_faces, capsys):
    """Models registered before the weights-only format (mlflow.pytorch, pickle) need the opt-in,
    which warns; they then give the same output as the generator file."""
    import mlflow

    from facesr.inference import PickleLoadWarning
    from facesr.models import load_generator

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])  # the session's tmp sqlite store
    exp = mlflow.create_experiment("facesr-inference-pickle-test", artifact_location=(tmp_path / "a").as_uri())
    model, _ = load_generator(trained_method1)
    # the way facesr.train.tracking.log_generator registered models before issue 15
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.pytorch.log_model(model, name="model", serialization_format="pickle",
                                 registered_model_name="facesr-method1-pickle-test", pip_requirements=[])
    lr = as_tensor(synthetic_faces["lr"][:5])
    from_path = facesr.load(trained_method1, device="cpu").predict(lr)
    for src in ("models:/facesr-method1-pickle-test/latest", f"runs:/{run.info.run_id}/model"):
        with pytest.raises(ModelSourceError, match="--allow-pickle") as exc:
            facesr.load(src, device="cpu")
        assert src in str(exc.value)
        with pytest.warns(PickleLoadWarning, match="unpickling"):
            up = facesr.load(src, device="cpu", allow_pickle=True)
        assert up.name == "method1"
        got = up.predict(lr)
        assert (got.sr - from_path.sr).abs().max().item() < 1e-5, src
        assert (got.parsing - from_path.parsing).abs().max().item() < 1e-5, src
    face = tmp_path / "face.png"
    Image.new("RGB", (16, 16), (120, 100, 90)).save(face)
    rc = cli_main(["upscale", str(face), "-o", str(tmp_path / "out"), "--model",
                   "models:/facesr-method1-pickle-test/1", "--allow-pickle", "--device", "cpu"])
    assert rc == 0
    assert "warning:" in capsys.readouterr().err and (tmp_path / "out" / "face.png").is_file()
    with pytest.raises(ModelSourceError, match="models:/no-such-model/latest"):
        facesr.load("models:/no-such-model/latest", device="cpu")


def test_bare_names_resolve_to_the_pipeline_files_of_the_nearest_project(tmp_path, monkeypatch, trained_method1,
                                                                         tiny_srresnet):
    """A name is its PIPELINE_MODEL_FILES entry (a variant: models/train/<name>.pt) under the folder of
    the nearest dvc.yaml, as dvc finds its project."""
    from facesr.inference import find_dvc_yaml

    project = tmp_path.resolve() / "project"
    (project / "models" / "train").mkdir(parents=True)
    (project / "models" / "gan").mkdir()
    (project / "dvc.yaml").write_text("stages: {}\n")
    (project / "models" / "train" / "method1.pt").write_bytes(trained_method1.read_bytes())
    (project / "models" / "train" / "srresnet_wide.pt").write_bytes(tiny_srresnet.read_bytes())
    (project / "models" / "gan" / "method2.pt").write_bytes(trained_method1.read_bytes())
    # method2 is train_gan's: a file of that name in models/train is not it
    (project / "models" / "train" / "method2.pt").write_bytes(tiny_srresnet.read_bytes())
    (project / "notebooks").mkdir()
    monkeypatch.chdir(project / "notebooks")  # dvc.yaml is found in a folder above, as dvc finds it
    assert find_dvc_yaml()[0] == project / "dvc.yaml"
    assert facesr.load("method1", device="cpu").source == str(project / "models" / "train" / "method1.pt")
    assert facesr.load("method2", device="cpu").source == str(project / "models" / "gan" / "method2.pt")
    assert facesr.load("srresnet_wide", device="cpu").name == "srresnet"
    assert facesr.load("bicubic", device="cpu").name == "bicubic"
    with pytest.raises(ModelSourceError, match="dvc repro") as exc:
        facesr.load("no_such_variant", device="cpu")
    assert str(project / "models" / "train" / "no_such_variant.pt") in str(exc.value)


def test_a_name_without_any_dvc_yaml_says_where_it_looked(tmp_path, monkeypatch):
    import facesr.inference.loading as loading

    monkeypatch.setattr(loading, "CHECKOUT", tmp_path / "installed")  # as for an installed facesr: no checkout
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelSourceError, match="no dvc.yaml in") as exc:
        facesr.load("method1", device="cpu")
    assert str(tmp_path) in str(exc.value) and "MLflow URI" in str(exc.value)
    (tmp_path / "dvc.yaml").write_text("stages: {prepare: {cmd: python prepare.py, outs: [data]}}\n")
    with pytest.raises(ModelSourceError, match="models/train/method1.pt"):
        facesr.load("method1", device="cpu")


def test_bad_model_sources_are_clear_errors(tmp_path):
    with pytest.raises(ModelSourceError, match="not found"):
        facesr.load(tmp_path / "missing.pt", device="cpu")
    bad = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ModelSourceError, match="not a facesr generator file"):
        facesr.load(bad, device="cpu")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelSourceError, match="junk.pt"):
        facesr.load(junk, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelSourceError, match="no CUDA"):
            facesr.load("bicubic", device="cuda")
