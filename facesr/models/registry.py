"""The model registry, `build_model`, and the exported-generator file format.

Kept apart from ``facesr/models/__init__.py`` so the model modules can import the decorator without
a circular import; ``facesr.models`` re-exports everything here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facesr.fileio import atomic_open

GENERATOR_FORMAT = "facesr-generator/1"
# <models>/trials/<variant>/<trial>.pt: every trial generator the train stages export beside the best
TRIALS_DIR = "trials"

# Where the pipeline's stages write generator files, relative to the project root (dvc.yaml's outs:
# `train` writes models/train, `train_gan` models/gan; tests/models/test_model_registry.py checks that
# dvc.yaml agrees). Any other name is a train variant, exported beside the table models.
TRAIN_MODELS_DIR = "models/train"
GAN_MODELS_DIR = "models/gan"
PIPELINE_MODEL_FILES = {
    "srresnet": f"{TRAIN_MODELS_DIR}/srresnet.pt",
    "method1": f"{TRAIN_MODELS_DIR}/method1.pt",
    "method2": f"{GAN_MODELS_DIR}/method2.pt",
}

MODELS: dict[str, type[nn.Module]] = {}


def pipeline_model_file(name: str) -> str:
    """The generator file of a pipeline model or train variant, relative to the project root."""
    return PIPELINE_MODEL_FILES.get(name, f"{TRAIN_MODELS_DIR}/{name}.pt")


class ModelConfigError(ValueError):
    """An unknown model name, or model arguments the model does not accept."""


class GeneratorFileError(ValueError):
    """A generator file that is not a readable facesr export, or that cannot be rebuilt."""


class GeneratorFileNotFoundError(GeneratorFileError, FileNotFoundError):
    """The generator file does not exist (both a GeneratorFileError and a FileNotFoundError)."""


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a model to `MODELS` under `name` (names are unique)."""

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in MODELS and MODELS[name] is not cls:
            raise ModelConfigError(f"model name '{name}' is already registered to {MODELS[name].__name__}")
        MODELS[name] = cls
        return cls

    return decorator


def model_arg_names(name: str) -> list[str]:
    """The constructor arguments (= params.yaml `model_args` keys) of a registered model."""
    cls = _model_class(name)
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def _model_class(name: str) -> type[nn.Module]:
    if name not in MODELS:
        raise ModelConfigError(f"unknown model '{name}'; valid models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def build_model(name: str, **model_args: Any) -> nn.Module:
    """Build a registered model and attach ``model.spec = {"model": name, "model_args": {...}}``.

    ``spec["model_args"]`` holds every constructor argument, defaults filled in, so an exported file
    rebuilds the same network even if a default changes later.
    """
    cls = _model_class(name)
    signature = inspect.signature(cls.__init__)
    try:
        bound = signature.bind(None, **model_args)
    except TypeError as exc:
        valid = ", ".join(model_arg_names(name))
        raise ModelConfigError(f"model '{name}': {exc}; valid model_args: {valid}") from None
    bound.apply_defaults()
    full_args = {k: v for k, v in bound.arguments.items() if k != "self"}
    model = cls(**full_args)
    model.spec = {"model": name, "model_args": dict(full_args)}
    return model


def _plain(value: Any, where: str) -> Any:
    """`value` as tensors/numbers/strings/lists/dicts only, so `weights_only=True` can read it back."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().item() if value.numel() == 1 else value.detach().cpu().clone()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    # numpy scalars and arrays, without importing numpy here
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise GeneratorFileError(f"{where}: cannot store a {type(value).__name__} in a generator file")


def save_generator(
    path: str | Path,
    model: nn.Module,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write `model` (built by `build_model`) as a self-contained generator file, atomically."""
    path = Path(path)
    spec = getattr(model, "spec", None)
    if not isinstance(spec, dict) or "model" not in spec or "model_args" not in spec:
        raise GeneratorFileError(
            f"{path}: the model has no .spec; build it with facesr.models.build_model so it can be rebuilt"
        )
    payload = {
        "format": GENERATOR_FORMAT,
        "model": str(spec["model"]),
        "model_args": _plain(spec["model_args"], "model_args"),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "params": _plain(dict(params or {}), "params"),
        "metrics": _plain(dict(metrics or {}), "metrics"),
        "extra": _plain(dict(extra or {}), "extra"),
    }
    with atomic_open(path, "wb") as fh:
        torch.save(payload, fh)
    return path


def load_generator(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a generator from its file alone: ``(model in eval mode, meta)``.

    `meta` holds everything in the file except the state dict (format, model, model_args, params,
    metrics, extra).
    """
    path = Path(path)
    if not path.is_file():
        raise GeneratorFileNotFoundError(f"{path}: generator file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError or EOFError by cause
        raise GeneratorFileError(f"{path}: not a facesr generator file (unreadable: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != GENERATOR_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise GeneratorFileError(
            f"{path}: not a facesr generator file (format {found!r}, expected {GENERATOR_FORMAT!r})"
        )
    missing = [k for k in ("model", "model_args", "state_dict") if k not in payload]
    if missing:
        raise GeneratorFileError(f"{path}: generator file lacks {', '.join(missing)}")
    name = payload["model"]
    if name not in MODELS:
        raise GeneratorFileError(
            f"{path}: unknown model '{name}'; valid models: {', '.join(sorted(MODELS))}"
        )
    try:
        model = build_model(name, **payload["model_args"])
    except (ModelConfigError, ValueError, TypeError) as exc:
        raise GeneratorFileError(f"{path}: cannot rebuild model '{name}': {exc}") from exc
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise GeneratorFileError(f"{path}: weights do not fit model '{name}': {exc}") from exc
    model.to(map_location)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.eval(), meta
