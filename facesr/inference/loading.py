"""Loading a model: `load(source)` turns a generator file, an MLflow URI or model folder, a
pipeline name or a module into an `Upscaler`.

Registry URIs take MLflow 3 aliases: ``models:/facesr-method1@champion`` (the best evaluated
version), ``models:/facesr-method1@latest-demo`` (the newest of a profile; facesr.mlflow_model).

Every source ends in a generator file read weights-only (or an exported ONNX file: a graph and its
metadata, facesr.inference.onnx_runtime); pickled MLflow pytorch models need
`allow_pickle=True` (docs/upscale.md). A bare name (`method1`, `srresnet`, `method2`, a train
variant) is looked up where the pipeline wrote it (`facesr.models.registry.PIPELINE_MODEL_FILES`)
under the project folder of the nearest dvc.yaml, then under this checkout's.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from facesr.device import PRECISIONS
from facesr.inference.errors import ModelSourceError
from facesr.inference.onnx_runtime import ONNX_SUFFIX
from facesr.inference.upscaler import Upscaler

URI_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/", "file:", "s3://", "gs://", "http://", "https://")
DEFAULT_MODEL = "method1"
# auto: onnx for an .onnx file, torch for everything else. Measured (benchmarks/inference.md): on
# this CPU ONNX Runtime is not faster than torch's default (bf16 autocast), so auto never swaps a
# generator file for its export.
RUNTIMES = ("auto", "torch", "onnx")


def add_runtime_arguments(parser) -> None:
    """`--runtime` and `--precision`, as `load` takes them: the same options for `facesr upscale` and `facesr serve`."""
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="torch: the generator in PyTorch; onnx: an exported .onnx file (facesr export) in ONNX "
                             "Runtime, given as the model or lying beside the generator file; auto: onnx for an "
                             ".onnx file, else torch (default auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="torch runtime: fp32, bf16 autocast, or auto (bf16 where the device does it fast); "
                             "ONNX Runtime is always fp32 (default auto)")


# the project folder of a source checkout (site-packages for an installed facesr: no dvc.yaml there)
CHECKOUT = Path(__file__).resolve().parents[2]


class PickleLoadWarning(UserWarning):
    """A model is being unpickled because the caller allowed it (`allow_pickle`, `--allow-pickle`)."""


def find_dvc_yaml(start: str | Path | None = None) -> list[Path]:
    """The dvc.yaml files a bare model name is looked up with, in order: the nearest one in `start`
    (default: the current folder) or a folder above it, then this checkout's."""
    here = Path(start or Path.cwd()).resolve()
    nearest = next((d / "dvc.yaml" for d in (here, *here.parents) if (d / "dvc.yaml").is_file()), None)
    found = [p for p in (nearest, CHECKOUT / "dvc.yaml") if p is not None and p.is_file()]
    return list(dict.fromkeys(p.resolve() for p in found))


def resolve_name(name: str) -> Path:
    """The generator file of a bare model name: its pipeline file (`pipeline_model_file`, e.g.
    models/train/method1.pt) under the folder of the first dvc.yaml of `find_dvc_yaml` that holds one."""
    from facesr.models.registry import pipeline_model_file

    how = ("train it with `dvc repro` (or `make demo`), pass a generator file path, or an MLflow URI such as "
           "models:/facesr-method1@champion")
    files = find_dvc_yaml()
    if not files:
        raise ModelSourceError(
            f"model '{name}': a bare name is looked up where the pipeline writes its models, beside a dvc.yaml, but "
            f"there is no dvc.yaml in {Path.cwd()}, a folder above it, or {CHECKOUT}; run from the project folder, "
            f"or {how}")
    searched = [dvc_yaml.parent / pipeline_model_file(name) for dvc_yaml in files]
    for path in searched:
        if path.is_file():
            return path
    raise ModelSourceError(f"model '{name}': none of {', '.join(map(str, searched))} exists; {how}")


def is_mlflow_source(source: str) -> bool:
    """An MLflow model URI, or a folder holding an MLmodel file."""
    path = Path(source)
    return source.startswith(URI_SCHEMES) or (path.is_dir() and (path / "MLmodel").is_file())


def model_path(source: str) -> Path:
    """The file a source that is not an MLflow model names: the path itself, or a bare name's pipeline
    file (`resolve_name`) when no such path exists; ModelSourceError when there is no file."""
    path = Path(source)
    if not path.exists() and path.suffix == "" and os.sep not in source and "/" not in source:
        path = resolve_name(source)
    if not path.exists():
        raise ModelSourceError(f"{path}: model file not found")
    return path


@contextlib.contextmanager
def mlflow_generator_file(source: str) -> Iterator[tuple[Path | None, Any]]:
    """The facesr generator file of the MLflow model `source` (None for a model without one, e.g. a pickled
    pytorch model) and its MLmodel, downloaded into a temporary folder that lasts as long as the context;
    ModelSourceError when `source` cannot be read as an MLflow model."""
    import mlflow

    from facesr.mlflow_model import NotAFacesrModelError, generator_file
    from facesr.services import mlflow_tracking_uri

    mlflow.set_tracking_uri(mlflow_tracking_uri())
    with tempfile.TemporaryDirectory(prefix="facesr-model-") as tmp:
        try:
            found = generator_file(source, Path(tmp))
        except NotAFacesrModelError as exc:
            raise ModelSourceError(str(exc)) from exc
        except Exception as exc:  # MlflowException, OSError, YAML errors: all mean "no model here"
            raise ModelSourceError(f"{source}: cannot read an MLflow model ({type(exc).__name__}: {exc})") from exc
        yield found


def load(source: Any = DEFAULT_MODEL, device: str | None = None, *, allow_pickle: bool = False,
         runtime: str = "auto", precision: str = "auto") -> Upscaler:
    """An `Upscaler` for `source`: a generator file, an exported ONNX file (`facesr export`), an MLflow
    URI or model folder, a pipeline name, or a module (a facesr generator). `device` None: cuda when
    a GPU is present, else cpu.

    `runtime` (`RUNTIMES`): "torch" runs the generator in PyTorch at `precision` ("auto": bf16 where
    the device does bf16 fast, `facesr.device.resolve_precision`); "onnx" runs an exported file in
    ONNX Runtime (fp32; CUDA provider on a cuda device): `source` is the .onnx file, or a generator
    file or name whose export lies beside it (`onnx_beside`); "auto" is "onnx" for an .onnx file,
    else "torch" (ONNX Runtime is not the faster on this CPU: benchmarks/inference.md).

    Nothing is unpickled: generator files are read with `torch.load(weights_only=True)`, ONNX files
    are graphs checked for facesr's metadata (`facesr.inference.onnx_runtime.read_onnx`), and an
    MLflow model gives its generator file (logged by `facesr.mlflow_model.log_generator`), read the
    same way. An MLflow pytorch model (pickled: what facesr registered before) is refused unless
    `allow_pickle=True`, which unpickles it with a warning: unpickling runs whatever code the file
    holds, so allow it only for a model from a registry you trust.
    """
    from torch import nn

    from facesr.device import DeviceError, resolve_device
    from facesr.models import GeneratorFileError, build_model, load_generator

    if runtime not in RUNTIMES:
        raise ModelSourceError(f"runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    requested_device = device
    try:
        device = resolve_device(device)
    except DeviceError as exc:
        raise ModelSourceError(str(exc)) from exc
    if isinstance(source, nn.Module):
        _torch_only(runtime, "a module")
        spec = getattr(source, "spec", {})
        return Upscaler(source, device=device, name=spec.get("model", type(source).__name__),
                        meta=dict(spec), source="<module>", precision=precision)
    src = str(source)
    if src == "bicubic":
        _torch_only(runtime, "bicubic (it has no weights to export)")
        model = build_model("bicubic")
        return Upscaler(model, device=device, name="bicubic", meta=dict(model.spec), source="bicubic",
                        precision=precision)
    if is_mlflow_source(src):
        _torch_only(runtime, f"{src} (an MLflow model: export its generator file with `facesr export`)")
        return _load_mlflow(src, device, allow_pickle, precision)
    path = model_path(src)
    if path.suffix == ONNX_SUFFIX:
        if runtime == "torch":
            raise ModelSourceError(f"{path}: an ONNX file runs with runtime onnx (or auto), not torch")
        return _load_onnx(path, requested_device, device, precision)
    if runtime == "onnx":
        exported = onnx_beside(path)
        if exported is None:
            raise ModelSourceError(f"{path}: no export of these weights beside it; write one with "
                                   f"`facesr export {path} -o {path.with_suffix(ONNX_SUFFIX)}`, or pass an .onnx file")
        return _load_onnx(exported, requested_device, device, precision)
    try:
        model, meta = load_generator(path, map_location=device)
    except GeneratorFileError as exc:
        raise ModelSourceError(str(exc)) from exc
    return Upscaler(model, device=device, name=meta["model"], meta=meta, source=str(path), precision=precision)


def _torch_only(runtime: str, what: str) -> None:
    if runtime == "onnx":
        raise ModelSourceError(f"runtime onnx runs an exported .onnx file; {what} runs with runtime torch")


def onnx_beside(path: Path) -> Path | None:
    """The export of the generator file `path` beside it (same name, .onnx), when there is one whose
    metadata names these very weights (its `facesr.source_sha256` is the file's sha256); else None."""
    from facesr.fileio import sha256_file
    from facesr.inference.onnx_runtime import OnnxModelError, read_onnx

    candidate = path.with_suffix(ONNX_SUFFIX)
    if not candidate.is_file():
        return None
    try:
        _data, meta = read_onnx(candidate)
    except OnnxModelError:
        return None
    return candidate if meta.source_sha256 == sha256_file(path) else None


def _load_onnx(path: Path, requested_device: str | None, device: str, precision: str) -> Upscaler:
    from facesr.inference.onnx_runtime import OnnxPredictor, cuda_provider_available

    if precision not in ("auto", "fp32"):
        raise ModelSourceError(f"{path}: ONNX Runtime runs the fp32 export; precision {precision!r} needs runtime torch")
    if requested_device in (None, "auto") and device.startswith("cuda") and not cuda_provider_available():
        device = "cpu"  # a GPU that this onnxruntime cannot use: the auto device is the CPU
    predictor = OnnxPredictor.from_file(path, device)
    return Upscaler.from_predictor(predictor, device=device, name=predictor.meta.model,
                                   meta=predictor.meta.as_meta(), source=str(path), runtime="onnx")


def _load_mlflow(source: str, device: str, allow_pickle: bool, precision: str) -> Upscaler:
    from facesr.mlflow_model import GENERATOR_ARTIFACT
    from facesr.models import GeneratorFileError, load_generator

    with mlflow_generator_file(source) as (path, mlmodel):
        if path is not None:
            try:
                model, meta = load_generator(path, map_location=device)
            except GeneratorFileError as exc:
                raise ModelSourceError(f"{source}: {exc}") from exc
            return Upscaler(model, device=device, name=meta["model"], meta=meta, source=source,
                            precision=precision)
    if "pytorch" not in mlmodel.flavors:
        raise ModelSourceError(f"{source}: not a facesr model (its MLmodel has no '{GENERATOR_ARTIFACT}' artifact "
                               f"and no pytorch flavour; flavours: {', '.join(mlmodel.flavors) or 'none'})")
    if not allow_pickle:
        raise ModelSourceError(
            f"{source}: refused to load an MLflow pytorch model: mlflow.pytorch.load_model unpickles it, and a "
            "pickle can run any code. facesr registers weights-only models now (facesr.mlflow_model.log_generator); "
            "models registered before that are pickles. If you trust where this one comes from, pass --allow-pickle "
            "(facesr.load(..., allow_pickle=True)), or register its generator file again."
        )
    warnings.warn(f"{source}: unpickling an MLflow pytorch model (allow_pickle): this runs any code the pickle "
                  "holds; do it only for a model from a registry you trust", PickleLoadWarning, stacklevel=3)
    import mlflow.pytorch

    try:
        model = mlflow.pytorch.load_model(source, map_location=device)
    except Exception as exc:  # MlflowException, OSError, unpickling errors: all mean "no model here"
        raise ModelSourceError(f"{source}: cannot load an MLflow pytorch model ({type(exc).__name__}: {exc})") from exc
    spec = getattr(model, "spec", None) or {}
    return Upscaler(model, device=device, name=spec.get("model", type(model).__name__), meta=dict(spec),
                    source=source, precision=precision)

