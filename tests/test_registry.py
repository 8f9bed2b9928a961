"""The registry the MLflow 3 way, in a real sqlite MLflow store: `latest-<profile>` and `champion`
aliases, evaluate metrics and data digests on the versions, dataset inputs on the runs, the
experiment marked as model training, and `facesr.load("models:/<name>@<alias>")` weights-only."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import facesr
from facesr.inference import ModelSourceError
from facesr.models import build_model, save_generator
from facesr.provenance import tree_digest
from facesr.train.checkpoint import RunIdentity
from tests.train.helpers import TINY, loop_params

NAME = "facesr-method1"
EXPERIMENT = "facesr-registry-test"


def make_prepared(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """A prepared-data folder in the downscale stage's format (manifest + packed arrays)."""
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        d = root / split
        d.mkdir(parents=True)
        np.save(d / "ids.npy", np.arange(n, dtype=np.int64))
        np.save(d / "hr.npy", rng.integers(0, 256, (n, 128, 128, 3), dtype=np.uint8))
        np.save(d / "lr.npy", rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8))
        np.save(d / "parsing.npy", rng.integers(0, 256, (n, 11, 128, 128), dtype=np.uint8))
    (root / "manifest.json").write_text(json.dumps({
        "format": "facesr-prepared/1", "kernel": "bicubic_aa", "hr_size": 128, "scale": 8, "parts": ["skin"] * 11,
        "splits": counts, "sha256": {}}))
    return root


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One sqlite store for the module (the one facesr.load reads too), an experiment, prepared data."""
    from facesr import tracking

    tmp = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        (tmp / "dvc.yaml").write_text("stages: {}\n")  # a DVC project: data is named as dvc.yaml does
        data = make_prepared(tmp / "data" / "prepared", {"train": 3, "val": 1, "test": 2})
        tracking.set_experiment(uri, EXPERIMENT)
        yield {"uri": uri, "data": data, "digest": tree_digest(data), "root": tmp}


@pytest.fixture()
def store(base, request, tmp_path) -> dict:
    """The module's store, with a registered name of this test's own (a fresh model to register)."""
    name = getattr(request, "param", f"facesr-test-{request.node.name[5:45]}")
    # seeds of its own too: the same weights in two tests would be one file registered under two names
    return base | {"name": name, "tmp": tmp_path, "seed0": 100 * (zlib.crc32(name.encode()) % 10_000)}


def train_version(store: dict, seed: int, profile: str = "demo") -> dict:
    """What the train stage does for one variant: a parent run, a trial run (TrialTracker, with the
    data), a generator file carrying its identity, logged and registered by log_generator."""
    import mlflow

    from facesr.mlflow_model import log_generator
    from facesr.train.tracking import TrialTracker

    trial = loop_params("method1", seed=store["seed0"] + seed)
    identity = RunIdentity(params=trial.params_hash, data=store["digest"], init="", code="code")
    workdir = store["tmp"] / f"trial-{seed}-{profile}"
    workdir.mkdir()
    # the stage's parent run lives in the driver; the trial (in a Ray worker there) nests under its id
    c = mlflow.MlflowClient(store["uri"])
    parent = c.create_run(c.get_experiment_by_name(EXPERIMENT).experiment_id, run_name="train",
                          tags={"profile": profile})
    tracker = TrialTracker(uri=store["uri"], experiment=EXPERIMENT, parent_run_id=parent.info.run_id,
                           run_name=f"method1-{seed}", trial=trial, tags={"profile": profile, **identity.tags()},
                           workdir=workdir, data=store["data"])
    tracker.end()
    torch.manual_seed(store["seed0"] + seed)
    path = save_generator(workdir / "method1.pt", build_model("method1", **TINY["method1"]),
                          params=trial.to_dict(), metrics={"val_psnr": 20.0},
                          extra={"step": 0, "identity": identity.as_dict()})
    version = log_generator(store["uri"], tracker.run_id, path, store["name"])
    c.set_terminated(parent.info.run_id)
    return {"path": path, "version": version, "run_id": tracker.run_id, "identity": identity}


def evaluate_scores(store: dict, files: dict[str, Path], psnr: dict[str, float], *, smoke: bool = False,
                    data: Path | None = None) -> str:
    """The evaluate stage's MLflow step for `files`, with the given mean scores (its input here)."""
    from facesr.evaluate import log_to_mlflow

    summary = {m: {"psnr": p, "ssim": 0.5, "lpips": 0.3, "psnr_y": p + 1.0, "ssim_y": 0.6, "n_images": 2}
               for m, p in psnr.items()}
    return log_to_mlflow(summary, params={"models": list(files), "smoke_test": smoke},
                         mlflow_params={"experiment": EXPERIMENT, "profile": "demo"},
                         data=data or store["data"], model_files=files)


def champion(c, name: str) -> str:
    return str(c.get_model_version_by_alias(name, "champion").version)


def client(store):
    import mlflow

    return mlflow.MlflowClient(store["uri"])


def test_each_version_gets_latest_of_its_profile_and_its_identity(store):
    first = train_version(store, 0, "demo")
    other = train_version(store, 1, "mini-cpu")
    second = train_version(store, 2, "demo")
    c = client(store)
    assert str(c.get_model_version_by_alias(store["name"], "latest-demo").version) == second["version"] == "3"
    assert str(c.get_model_version_by_alias(store["name"], "latest-mini-cpu").version) == other["version"] == "2"
    assert first["version"] == "1" and "latest-demo" not in c.get_model_version(store["name"], "1").aliases
    tags = c.get_model_version(store["name"], second["version"]).tags
    assert tags["run_fingerprint"] == second["identity"].fingerprint
    assert tags["data_sha256"] == store["digest"] and tags["profile"] == "demo"
    from facesr.fileio import sha256_file

    assert tags["generator_sha256"] == sha256_file(second["path"])


def test_training_and_evaluate_runs_log_the_prepared_data_as_a_dataset(store, monkeypatch):
    monkeypatch.chdir(store["tmp"])  # outside the project, as a Ray trial's folder is: the name is the same
    trained = train_version(store, 0)
    run_id = evaluate_scores(store, {"method1": trained["path"]}, {"method1": 25.0})
    c = client(store)
    for rid, context, split in ((trained["run_id"], "training", "train"), (run_id, "testing", "test")):
        inputs = c.get_run(rid).inputs.dataset_inputs
        assert len(inputs) == 1, rid
        ds, tags = inputs[0].dataset, {t.key: t.value for t in inputs[0].tags}
        assert ds.name == "data/prepared" and ds.digest == store["digest"][:16]
        assert json.loads(ds.source)["uri"] == str((store["data"] / "manifest.json").resolve())
        assert tags["mlflow.data.context"] == context and tags["split"] == split
        assert tags["data_sha256"] == store["digest"]
        assert {s["name"] for s in json.loads(ds.schema)["mlflow_colspec"]} == {"ids", "hr", "lr", "parsing"}
    assert c.get_run(run_id).data.tags["method1.registered_model"] == f"models:/{store['name']}/{trained['version']}"


def test_the_experiment_is_marked_as_model_training(store):
    import mlflow

    from facesr import tracking

    exp = client(store).get_experiment_by_name(EXPERIMENT)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    # a kind chosen by hand (the UI's selector) is kept
    client(store).set_experiment_tag(exp.experiment_id, "mlflow.experimentKind", "genai_development")
    tracking.set_experiment(store["uri"], EXPERIMENT)
    assert mlflow.get_experiment(exp.experiment_id).tags["mlflow.experimentKind"] == "genai_development"
    client(store).set_experiment_tag(exp.experiment_id, "mlflow.experimentKind", "custom_model_development")


def test_evaluate_tags_versions_and_moves_champion_only_to_a_better_one(store):
    a, b, c_ = (train_version(store, s) for s in (0, 1, 2))
    c = client(store)
    evaluate_scores(store, {"method1": a["path"]}, {"method1": 25.0})
    assert champion(c, store["name"]) == a["version"]
    tags = c.get_model_version(store["name"], a["version"]).tags
    assert float(tags["test.psnr"]) == 25.0 and float(tags["test.psnr_y"]) == 26.0
    assert {f"test.{k}" for k in ("psnr", "ssim", "lpips", "psnr_y", "ssim_y")} <= set(tags)
    assert tags["test.data_sha256"] == store["digest"] and tags["test.n_images"] == "2"
    assert "PSNR 25.0000" in c.get_model_version(store["name"], a["version"]).description
    # worse, and equal: the champion stays (and a description a person wrote is theirs)
    c.update_model_version(store["name"], b["version"], description="retrained with the new crop")
    evaluate_scores(store, {"method1": b["path"]}, {"method1": 24.0})
    assert c.get_model_version(store["name"], b["version"]).description == "retrained with the new crop"
    evaluate_scores(store, {"method1": c_["path"]}, {"method1": 25.0})
    assert champion(c, store["name"]) == a["version"]
    assert float(c.get_model_version(store["name"], b["version"]).tags["test.psnr"]) == 24.0
    # better: it moves
    evaluate_scores(store, {"method1": b["path"]}, {"method1": 26.5})
    assert champion(c, store["name"]) == b["version"]
    # a smoke evaluation leaves the registry alone, however good its few faces look
    evaluate_scores(store, {"method1": c_["path"]}, {"method1": 40.0}, smoke=True)
    assert champion(c, store["name"]) == b["version"]
    assert float(c.get_model_version(store["name"], c_["version"]).tags["test.psnr"]) == 25.0


def test_champion_follows_the_data_evaluated_last(store):
    """Scores on other test data do not compare: an evaluation on new data names its best version
    champion even when the old champion's number (on the old data) is higher."""
    a, b = train_version(store, 0), train_version(store, 1)
    evaluate_scores(store, {"method1": a["path"]}, {"method1": 30.0})
    other = make_prepared(store["tmp"] / "data" / "other", {"train": 3, "val": 1, "test": 2}, seed=1)
    evaluate_scores(store, {"method1": b["path"]}, {"method1": 20.0}, data=other)
    c = client(store)
    assert champion(c, store["name"]) == b["version"]
    assert c.get_model_version(store["name"], b["version"]).tags["test.data_sha256"] == tree_digest(other)


def test_a_file_registered_nowhere_is_scored_without_registry_changes(store, tmp_path):
    torch.manual_seed(5)
    path = save_generator(tmp_path / "unregistered.pt", build_model("method1", **TINY["method1"]))
    run_id = evaluate_scores(store, {"method1": path}, {"method1": 25.0})
    assert "method1.registered_model" not in client(store).get_run(run_id).data.tags
    assert client(store).search_registered_models(f"name = '{store['name']}'") == []


@pytest.mark.parametrize("store", [NAME], indirect=True)
def test_facesr_load_reads_the_alias_uris_weights_only(store, monkeypatch):
    import mlflow

    from facesr.models import load_generator
    from facesr.models.predictor import Predictor

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    a, b = train_version(store, 0), train_version(store, 1)
    evaluate_scores(store, {"method1": a["path"]}, {"method1": 25.0})
    lr = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for uri, expected in ((f"models:/{NAME}@champion", a), (f"models:/{NAME}@latest-demo", b)):
        up = facesr.load(uri, device="cpu")
        model, meta = load_generator(expected["path"])
        assert up.source == uri and up.meta == meta
        # the file's weights in the precision facesr.load picked (bf16 on a CPU with fast bf16)
        expected = Predictor(model, device="cpu", precision=up.precision)(lr).sr
        torch.testing.assert_close(up.predict(lr).sr, expected, rtol=0, atol=1e-6)
    with pytest.raises(ModelSourceError, match="@nope"):
        facesr.load(f"models:/{NAME}@nope", device="cpu")
    # the pyfunc model of the alias loads without pickle too
    assert mlflow.pyfunc.load_model(f"models:/{NAME}@champion").predict(lr.numpy()).shape == (2, 3, 128, 128)
    # and `facesr upscale --model models:/facesr-method1@champion`
    from PIL import Image

    from facesr.cli import main as cli_main

    Image.new("RGB", (16, 16), (120, 100, 90)).save(store["tmp"] / "face.png")
    rc = cli_main(["upscale", str(store["tmp"] / "face.png"), "-o", str(store["tmp"] / "out"), "--model",
                   f"models:/{NAME}@champion", "--device", "cpu"])
    assert rc == 0 and Image.open(next((store["tmp"] / "out").glob("face*.png"))).size == (128, 128)


class _Marker:
    """Unpickling this creates `path`: proof that a loader ran code from a file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch '{self.path}'",))


def test_an_alias_to_a_pickled_model_is_refused_and_runs_nothing(store, tmp_path):
    """A champion someone pointed at a pickled pytorch model (how facesr registered before issue
    15) whose weights file runs a command when unpickled: facesr.load refuses it."""
    import mlflow
    import mlflow.pytorch

    with mlflow.start_run():
        info = mlflow.pytorch.log_model(build_model("srresnet", **TINY["srresnet"]), name="model",
                                        registered_model_name="facesr-pickled", serialization_format="pickle",
                                        pip_requirements=[])
    stored = list((store["root"] / "mlartifacts").rglob("data/model.pth"))
    assert len(stored) == 1, stored
    marker = tmp_path / "marker"
    torch.save(_Marker(marker), stored[0])
    client(store).set_registered_model_alias("facesr-pickled", "champion", str(info.registered_model_version))
    with pytest.raises(ModelSourceError, match="refused to load an MLflow pytorch model"):
        facesr.load("models:/facesr-pickled@champion", device="cpu")
    assert not marker.exists()
