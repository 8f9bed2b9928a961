"""facesr.mlflow_model: generators registered in a real sqlite MLflow store load without pickle,
through `mlflow.pyfunc.load_model` and through `facesr.load`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import facesr
from facesr.inference import ModelSourceError
from facesr.models import GeneratorFileError, build_model, load_generator, save_generator

TINY = {"srresnet": dict(num_feat=8, num_block=1),
        "method1": dict(num_feat=8, num_block=1, reduction=4, prior_feat=8, prior_res_blocks=1, num_hourglass=1,
                        hourglass_depth=2)}
EXPERIMENT = "facesr-mlflow-model-test"


class _Marker:
    """Unpickling this creates `path`: proof that a loader ran code from a file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch '{self.path}'",))


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> dict:
    """Both generator kinds logged and registered the way the training stage does it: into a run that
    has ended, while the stage's own parent run is active in the process."""
    import mlflow

    from facesr.mlflow_model import log_generator

    base = tmp_path_factory.mktemp("mlflow_model")
    uri = os.environ["MLFLOW_TRACKING_URI"]  # the session's sqlite store in a tmp folder (conftest.py)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=(base / "mlartifacts").as_uri())
    exp = mlflow.set_experiment(EXPERIMENT)
    out = {"uri": uri, "base": base}
    with mlflow.start_run(experiment_id=exp.experiment_id) as parent:
        for kind, args in TINY.items():
            torch.manual_seed(0)
            path = save_generator(base / f"{kind}.pt", build_model(kind, **args), metrics={"val_psnr": 20.5})
            client = mlflow.MlflowClient()
            trial = client.create_run(exp.experiment_id)
            client.set_terminated(trial.info.run_id)
            version = log_generator(uri, trial.info.run_id, path, f"facesr-test-{kind}")
            out[kind] = {"path": path, "run_id": trial.info.run_id, "version": version,
                         "uri": f"models:/facesr-test-{kind}/{version}", "name": f"facesr-test-{kind}"}
        assert mlflow.active_run().info.run_id == parent.info.run_id, "log_generator must leave the parent run active"
    return out


@pytest.fixture()
def no_pickle(monkeypatch):
    """MLflow's own switch: every MLflow loader that would unpickle refuses."""
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")


def _lr(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, 16, 16), dtype=np.float32)


def _sr_from_file(path: Path, lr: np.ndarray) -> np.ndarray:
    model, _ = load_generator(path)
    with torch.inference_mode():
        return model(torch.from_numpy(lr)).sr.clamp(0, 1).numpy()


def test_log_generator_registers_a_version_of_the_run(registered):
    import mlflow

    client = mlflow.MlflowClient(registered["uri"])
    for kind in TINY:
        r = registered[kind]
        mv = client.get_model_version(r["name"], r["version"])
        assert mv.run_id == r["run_id"] and r["version"] == "1"
        assert client.get_run(r["run_id"]).info.status == "FINISHED"


def test_pyfunc_predicts_any_batch_without_pickle(registered, no_pickle):
    import mlflow

    for kind in TINY:
        r = registered[kind]
        model = mlflow.pyfunc.load_model(r["uri"])
        for n in (1, 3):
            lr = _lr(n, seed=n)
            sr = model.predict(lr)
            assert isinstance(sr, np.ndarray) and sr.dtype == np.float32 and sr.shape == (n, 3, 128, 128)
            assert sr.min() >= 0 and sr.max() <= 1
            # the final SR of the generator in the file (Method 1: the third of its outputs)
            np.testing.assert_allclose(sr, _sr_from_file(r["path"], lr), atol=1e-6, rtol=0)
        meta = model.metadata.metadata
        _, file_meta = load_generator(r["path"])
        assert meta["facesr_model"] == kind
        assert json.loads(meta["model_args"]) == file_meta["model_args"]
        inputs = model.metadata.get_input_schema().inputs[0]
        assert inputs.shape == (-1, 3, 16, 16) and inputs.type == np.float32


def test_registered_model_holds_the_generator_file_and_no_pickle(registered, tmp_path):
    import mlflow

    for kind in TINY:
        r = registered[kind]
        folder = Path(mlflow.artifacts.download_artifacts(r["uri"], dst_path=str(tmp_path / kind)))
        files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
        assert files[f"artifacts/{kind}.pt"].read_bytes() == r["path"].read_bytes()
        # every other file is text: the MLmodel, the environment, the JSON input example, the code file
        others = {n for n in files if n != f"artifacts/{kind}.pt"}
        assert all(Path(n).suffix in ("", ".txt", ".yaml", ".json", ".py") for n in others), others
        assert "mlflow_pyfunc.py" in others
        pyfunc = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["python_function"]
        assert "python_model" not in pyfunc and pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model"


def test_facesr_load_reads_the_registered_generator(registered, no_pickle, tmp_path):
    import mlflow

    from facesr.models.predictor import Predictor

    lr = _lr(4)
    for kind in TINY:
        r = registered[kind]
        file_model, file_meta = load_generator(r["path"])
        folder = mlflow.artifacts.download_artifacts(r["uri"], dst_path=str(tmp_path / kind))
        for src in (r["uri"], f"models:/{r['name']}/latest", f"runs:/{r['run_id']}/model", folder):
            up = facesr.load(src, device="cpu")
            assert up.name == kind and up.source == src and up.meta == file_meta, src
            got = up.predict(torch.from_numpy(lr)).sr.numpy()
            # the file's weights in the precision facesr.load picked (auto: bf16 on a CPU with fast
            # bf16, fp32 elsewhere): the same weights give the same numbers only in the same precision
            expected = Predictor(file_model, device="cpu", precision=up.precision)(torch.from_numpy(lr)).sr.numpy()
            np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0, err_msg=src)
            assert (up.predict(torch.from_numpy(lr)).parsing is not None) == (kind == "method1")


def _copy_model(registered, tmp_path: Path, kind: str = "srresnet") -> Path:
    import mlflow

    src = Path(mlflow.artifacts.download_artifacts(registered[kind]["uri"], dst_path=str(tmp_path / "dl")))
    folder = tmp_path / "model"
    shutil.copytree(src, folder)
    return folder


def test_a_pickle_in_place_of_the_generator_file_is_refused(registered, tmp_path):
    """The weights file of a facesr MLflow model is read weights-only: a pickle there runs nothing."""
    folder = _copy_model(registered, tmp_path)
    marker = tmp_path / "marker"
    torch.save(_Marker(marker), folder / "artifacts" / "srresnet.pt")
    with pytest.raises(ModelSourceError, match="not a facesr generator file") as exc:
        facesr.load(folder, device="cpu")
    assert str(folder) in str(exc.value)
    assert not marker.exists()


def test_an_mlmodel_naming_a_file_outside_the_folder_is_refused(registered, tmp_path):
    folder = _copy_model(registered, tmp_path)
    shutil.copy(folder / "artifacts" / "srresnet.pt", tmp_path / "elsewhere.pt")
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["python_function"]["artifacts"]["generator"]["path"] = "../elsewhere.pt"
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(ModelSourceError, match="outside the model folder"):
        facesr.load(folder, device="cpu")


def test_an_mlflow_model_that_is_not_a_generator_is_named(tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": {"pickled_model": "model.pkl"}}}))
    with pytest.raises(ModelSourceError, match="not a facesr model") as exc:
        facesr.load(folder, device="cpu")
    assert str(folder) in str(exc.value)


def test_log_generator_refuses_a_file_that_is_not_a_generator(registered, tmp_path):
    import mlflow

    from facesr.mlflow_model import log_generator

    bad = tmp_path / "state_dict.pt"
    torch.save(build_model("srresnet", **TINY["srresnet"]).state_dict(), bad)
    run = mlflow.MlflowClient(registered["uri"]).create_run(mlflow.get_experiment_by_name(EXPERIMENT).experiment_id)
    with pytest.raises(GeneratorFileError, match="state_dict.pt"):
        log_generator(registered["uri"], run.info.run_id, bad, "facesr-test-bad")
    assert mlflow.MlflowClient(registered["uri"]).search_registered_models("name = 'facesr-test-bad'") == []
