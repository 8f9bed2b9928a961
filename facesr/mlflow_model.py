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
"""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import Model, ModelSignature
from mlflow.types import Schema, TensorSpec

# The artifact name of the generator file in the pyfunc flavour's config; facesr.load looks for it.
GENERATOR_ARTIFACT = "generator"
CODE_FILE = Path(__file__).with_name("mlflow_pyfunc.py")
LR_SIZE = 16


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

        self.device = resolve_device("auto")
        self.model, self.meta = load_generator(context.artifacts[GENERATOR_ARTIFACT], map_location=self.device)

    def predict(self, context, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        import torch

        lr = np.asarray(model_input)
        if lr.ndim != 4 or lr.shape[1:] != (3, LR_SIZE, LR_SIZE):
            raise ValueError(f"expected a batch of LR faces (N, 3, {LR_SIZE}, {LR_SIZE}), got shape {lr.shape}")
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32)).to(self.device))
        return out.sr.clamp(0.0, 1.0).cpu().numpy()


def signature(upscale: int) -> ModelSignature:
    hr = LR_SIZE * upscale
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, LR_SIZE, LR_SIZE))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, hr, hr))]))


def log_generator(uri: str, run_id: str, generator_path: str | Path, registered_name: str) -> str:
    """Log the generator file `generator_path` as a pyfunc model named "model" in run `run_id` of
    the store at `uri`, register it as `registered_name`, and return the new version.

    The file is read once here (weights only) to check it and to record its metadata
    (facesr_model, model_args); the model itself is the file, copied as it is.
    """
    from importlib.metadata import version

    from facesr.models import load_generator

    _, meta = load_generator(generator_path)
    upscale = int(meta["model_args"].get("upscale", 8))
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
    return str(info.registered_model_version)


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
