"""facesr generators in MLflow without pickle: logging, registering and finding the weights again.

`log_generator` logs an exported generator file (facesr-generator/1, see facesr.models) as an
MLflow 3 "models from code" pyfunc model: the model folder holds the generator file as the artifact
``generator``, and ``facesr/mlflow_pyfunc.py``, a two-line file that names `GeneratorModel`. No
Python object is pickled, so the model loads with ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``:

    model = mlflow.pyfunc.load_model("models:/facesr-method1/1")
    sr = model.predict(lr)   # lr: float32 (N, 3, 16, 16) in [0, 1] -> float32 (N, 3, 128, 128) in [0, 1]

`mlflow.pyfunc.load_model` runs the model's code file, as it does for every pyfunc model, and that
file imports the installed facesr. `facesr.load(uri)` runs nothing from the model: it reads the
MLmodel file, fetches the generator artifact (`generator_file`) and reads it with
`facesr.models.load_generator` (``torch.load(weights_only=True)``).

The registry the MLflow 3 way: aliases, not stages. Each registered version carries the tags
`generator_sha256` (the file's sha256), `run_fingerprint` and `data_sha256` (the trial's identity,
facesr.train.checkpoint.RunIdentity) and `profile`, and gets the alias ``latest-<profile>``: the
newest version of that name trained by that profile (``models:/facesr-method1@latest-demo``).
`record_evaluation` (the evaluate stage) finds the version of a scored generator file by its
sha256, tags it with the test metrics (``test.psnr``, ...) and the test data's digest, and moves
the alias ``champion`` as `CHAMPION_RULE` says.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import Model, ModelSignature
from mlflow.types import Schema, TensorSpec

from facesr.data.layout import LR_SIZE
from facesr.fileio import sha256_file

# The artifact name of the generator file in the pyfunc flavour's config; facesr.load looks for it.
GENERATOR_ARTIFACT = "generator"
CODE_FILE = Path(__file__).with_name("mlflow_pyfunc.py")
CHAMPION = "champion"
LATEST_PREFIX = "latest-"
# the evaluate metrics a version is tagged with and the champion is chosen by (the first)
TEST_METRICS = ("psnr", "ssim", "lpips", "psnr_y", "ssim_y")
TEST_TAG = "test."
DESCRIPTION_PREFIX = "Test scores on"
CHAMPION_RULE = (
    "The champion of a registered name is its best evaluated version by test PSNR, compared only between "
    "versions scored on the same test data (the prepared data's digest and the number of faces): an evaluation "
    "moves it to the version it scored when that version's PSNR is strictly higher than the champion's, or when "
    "the champion has no scores on that test data (none yet, or scores on other data, which do not compare: the "
    "champion then follows the data evaluated last). A tie keeps the champion. Smoke evaluations (a few "
    "faces) leave the registry as it is.")
log = logging.getLogger(__name__)


class NotAFacesrModelError(ValueError):
    """An MLflow model that is not a facesr generator logged by `log_generator`."""


class GeneratorModel(mlflow.pyfunc.PythonModel):
    """The pyfunc model of a facesr generator: a batch of LR faces in, their SR faces out.

    `predict` takes a float32 array (N, 3, 16, 16) with values in [0, 1] (RGB, channels first) and
    returns a float32 array (N, 3, 16 * upscale, 16 * upscale) in [0, 1]: the final SR image (a
    Method 1 generator's coarse SR and parsing maps are not returned). Any N works.
    """

    def load_context(self, context) -> None:
        from facesr.device import resolve_device
        from facesr.models import load_generator
        from facesr.models.predictor import Predictor

        self.device = resolve_device("auto")
        model, self.meta = load_generator(context.artifacts[GENERATOR_ARTIFACT], map_location=self.device)
        # fp32 in the contiguous format, as this model has always served: a served version's outputs
        # do not depend on whether the serving machine has fast bf16
        self.predictor = Predictor(model, device=self.device, precision="fp32", channels_last=False,
                                   setting="GeneratorModel")

    def predict(self, context, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        import torch

        lr = np.asarray(model_input)
        if lr.ndim != 4 or lr.shape[1:] != (3, LR_SIZE, LR_SIZE):
            raise ValueError(f"expected a batch of LR faces (N, 3, {LR_SIZE}, {LR_SIZE}), got shape {lr.shape}")
        return self.predictor(torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32))).sr.cpu().numpy()


def alias_for_profile(profile: str) -> str:
    """``latest-<profile>``, with any character an alias cannot hold (alphanumerics, _ and -) as -."""
    return LATEST_PREFIX + re.sub(r"[^\w-]", "-", profile)


def signature(upscale: int) -> ModelSignature:
    hr = LR_SIZE * upscale
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, LR_SIZE, LR_SIZE))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, hr, hr))]))


def log_generator(uri: str, run_id: str, generator_path: str | Path, registered_name: str) -> str:
    """Log the generator file `generator_path` as a pyfunc model named "model" in run `run_id` of
    the store at `uri`, register it as `registered_name`, and return the new version.

    The file is read once here (weights only) to check it and to record its metadata
    (facesr_model, model_args); the model itself is the file, copied as it is. The version is
    tagged with the file's sha256 and the identity of the run that trained it, and gets the alias
    ``latest-<profile>``, the profile being the run's `profile` tag (facesr.tracking.run_tags).
    """
    from importlib.metadata import version

    from facesr.models import load_generator
    from facesr.models.predictor import upscale_of

    _, meta = load_generator(generator_path)
    upscale = upscale_of(meta)
    mlflow.set_tracking_uri(uri)
    # an inherited MLFLOW_RUN_ID would make start_run resume that run instead (mlflow#15713)
    os.environ.pop("MLFLOW_RUN_ID", None)
    # nested=True: the stage's parent run may still be active in this process
    with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(CODE_FILE),
            artifacts={GENERATOR_ARTIFACT: str(generator_path)},
            signature=signature(upscale),
            # a real batch through the logged model: MLflow checks that it loads and predicts
            input_example=np.zeros((2, 3, LR_SIZE, LR_SIZE), dtype=np.float32),
            # given, not inferred: inference would load the model in a subprocess to watch its imports
            pip_requirements=[f"{name}=={version(name)}" for name in ("torch", "numpy", "mlflow")],
            registered_model_name=registered_name,
            metadata={"facesr_model": meta["model"],
                      "model_args": json.dumps(meta["model_args"], sort_keys=True),
                      "facesr_format": meta["format"],
                      # the installed distribution's, not `facesr.__version__`: importing the top
                      # package's names would make every training stage depend on facesr.inference
                      "facesr_version": version("facesr")},
        )
    registered = str(info.registered_model_version)
    client = mlflow.MlflowClient(uri)
    identity = (meta.get("extra") or {}).get("identity") or {}
    profile = client.get_run(run_id).data.tags.get("profile")
    tags = {"generator_sha256": sha256_file(generator_path), "run_fingerprint": identity.get("fingerprint"),
            "data_sha256": identity.get("data"), "profile": profile, "facesr_model": meta["model"]}
    for key, value in tags.items():
        if value:
            client.set_model_version_tag(registered_name, registered, key, str(value))
    if profile and profile != "unset":
        # versions only grow: the one registered now is the newest of its profile
        client.set_registered_model_alias(registered_name, alias_for_profile(profile), registered)
    return registered


@dataclass(frozen=True)
class Scored:
    """A registered version an evaluation scored, and whether it is now its name's champion."""

    name: str
    version: str
    champion: bool

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def versions_of_file(client, generator_path: str | Path) -> list:
    """The registered versions whose model holds exactly the generator file at `generator_path`
    (found by the `generator_sha256` tag `log_generator` sets), oldest first."""
    sha = sha256_file(generator_path)
    found = client.search_model_versions(f"tags.generator_sha256 = '{sha}'")
    return sorted(found, key=lambda mv: (mv.name, int(mv.version)))


def _test_psnr(mv, data_sha256: str, n_images: int) -> float | None:
    """The version's test PSNR when its scores are on this test data, else None."""
    tags = mv.tags
    if tags.get(f"{TEST_TAG}data_sha256") != data_sha256 or tags.get(f"{TEST_TAG}n_images") != str(n_images):
        return None
    try:
        return float(tags[f"{TEST_TAG}{TEST_METRICS[0]}"])
    except (KeyError, ValueError):
        return None


def update_champion(client, name: str, *, data_sha256: str, n_images: int) -> str | None:
    """Move the `champion` alias of `name` as `CHAMPION_RULE` says; returns the champion's version."""
    versions = client.search_model_versions(f"name = '{name}'")
    scored = [(psnr, int(mv.version)) for mv in versions if (psnr := _test_psnr(mv, data_sha256, n_images)) is not None]
    if not scored:
        return None
    # the highest PSNR; among equal ones the oldest version, which reached it first
    best_psnr, best = max(scored, key=lambda s: (s[0], -s[1]))
    current = next((mv for mv in versions if CHAMPION in mv.aliases), None)
    if current is not None:
        current_psnr = _test_psnr(current, data_sha256, n_images)
        if current_psnr is not None and current_psnr >= best_psnr:
            return str(current.version)
    client.set_registered_model_alias(name, CHAMPION, str(best))
    log.info("%s: champion is now version %s (test PSNR %.4f on %d faces)", name, best, best_psnr, n_images)
    return str(best)


def describe_scores(metrics: Mapping[str, float], *, data_sha256: str, n_images: int, eval_run_id: str) -> str:
    names = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y"}
    scores = ", ".join(f"{names[k]} {float(metrics[k]):.4f}" for k in TEST_METRICS if metrics.get(k) is not None)
    return (f"{DESCRIPTION_PREFIX} {n_images} faces of data {data_sha256[:16]}: {scores} "
            f"(evaluate run {eval_run_id}; tags test.*)")


def record_evaluation(uri: str, generator_path: str | Path, metrics: Mapping[str, float], *, data_sha256: str,
                      n_images: int, eval_run_id: str) -> list[Scored]:
    """Tag every registered version holding the generator file `generator_path` with its test
    metrics (``test.<metric>``), the test data (``test.data_sha256``, ``test.n_images``) and the
    evaluate run (``test.run_id``), say the same in its description (unless a person wrote one),
    then move the names' `champion` aliases (`CHAMPION_RULE`).

    A file registered nowhere in the store at `uri` (trained against another tracking store, or
    registered before versions carried `generator_sha256`) gives an empty list.
    """
    client = mlflow.MlflowClient(uri)
    tags = {f"{TEST_TAG}{k}": repr(round(float(metrics[k]), 6)) for k in TEST_METRICS if metrics.get(k) is not None}
    tags |= {f"{TEST_TAG}data_sha256": data_sha256, f"{TEST_TAG}n_images": str(n_images),
             f"{TEST_TAG}run_id": eval_run_id}
    out = []
    for mv in versions_of_file(client, generator_path):
        for key, value in tags.items():
            client.set_model_version_tag(mv.name, mv.version, key, value)
        # the description is the first thing the version page shows; one a person wrote is kept
        if not mv.description or mv.description.startswith(DESCRIPTION_PREFIX):
            client.update_model_version(mv.name, mv.version, description=describe_scores(
                metrics, data_sha256=data_sha256, n_images=n_images, eval_run_id=eval_run_id))
        out.append((mv.name, str(mv.version)))
    champions = {name: update_champion(client, name, data_sha256=data_sha256, n_images=n_images) for name, _ in out}
    return [Scored(name, version, champions.get(name) == version) for name, version in out]


def generator_artifact(mlmodel: Model, where: str) -> str | None:
    """The generator file's path inside the model folder, from its MLmodel; None when the model is
    not one of ours. A path that leaves the folder is refused."""
    pyfunc = mlmodel.flavors.get("python_function") or {}
    entry = (pyfunc.get("artifacts") or {}).get(GENERATOR_ARTIFACT)
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        return None
    rel = entry["path"]
    norm = posixpath.normpath(rel)
    if posixpath.isabs(rel) or norm == ".." or norm.startswith("../") or "\\" in rel:
        raise NotAFacesrModelError(f"{where}: MLmodel names a generator file outside the model folder ({rel!r})")
    return norm


def read_mlmodel(source: str, tmp: Path) -> tuple[Model, Path | None]:
    """The MLmodel of a model folder or URI, and the local folder when `source` is one.

    Only the MLmodel file (YAML) is fetched; nothing of the model is loaded.
    """
    folder = Path(source)
    if folder.is_dir():
        if not (folder / "MLmodel").is_file():
            raise NotAFacesrModelError(f"{source}: no MLmodel file in this folder")
        return Model.load(str(folder / "MLmodel")), folder
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"{source.rstrip('/')}/MLmodel", dst_path=str(tmp))
    return Model.load(local), None


def generator_file(source: str, tmp: Path) -> tuple[Path | None, Model]:
    """The local path of the generator file of the MLflow model at `source` (a model folder or an
    MLflow URI; remote files are downloaded into `tmp`), and the model's MLmodel.

    The path is None when the model holds no facesr generator (e.g. an old pickled pytorch model).
    """
    mlmodel, folder = read_mlmodel(source, tmp)
    rel = generator_artifact(mlmodel, source)
    if rel is None:
        return None, mlmodel
    if folder is not None:
        path = (folder / rel).resolve()
        if not path.is_relative_to(folder.resolve()):
            raise NotAFacesrModelError(f"{source}: the generator file {rel!r} links outside the model folder")
        return path, mlmodel
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"{source.rstrip('/')}/{rel}",
                                                dst_path=str(tmp / "generator"))
    return Path(local), mlmodel
