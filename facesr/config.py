"""Reading `params.yaml`: each stage reads only its own section, with its profile's overrides.

Each section is parsed once, at the edge (the stage's `main`, or its flow's command line), into
the frozen dataclass below that bears its name (`load_download(path) -> DownloadParams`, ...; the
training sections have theirs in facesr.train.config): the field names are the YAML keys, and a
bad key or value is a ParamsError naming the file (params.yaml + the profile's) and the key.
Besides its section, train, train_gan and evaluate read the top-level keys of SHARED_KEYS
(`profile`, `mlflow`) as a RunContext (`load_context`); those come from params.yaml alone, never
from a profile, and dvc.yaml lists them among those stages' params.

A profile is an override set in ``profiles/<name>.yaml`` (beside params.yaml), chosen by the
top-level ``profile:`` key of params.yaml; it holds every stage section, ``{}`` where it changes
nothing. ``dvc exp run -S profile=mini-cpu`` therefore switches the whole pipeline in one command,
and dvc.yaml lists ``profiles/${profile}.yaml:[<section>]`` beside ``<section>`` so that DVC reruns
exactly the stages whose merged parameters changed.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

PROFILE_KEY = "profile"
# top-level keys shared by several stages: the profile's name (also MLflow's `profile` tag) and the
# MLflow tracking settings (tracking_uri, experiment) that train, train_gan and evaluate log to
SHARED_KEYS = (PROFILE_KEY, "mlflow")
PROFILES_DIR = "profiles"
# Mappings whose entries are whole, self-validated specs: a profile may add new ones (an ablation
# variant), where anywhere else a key params.yaml lacks is a misspelling.
OPEN_MAPPINGS = ("variants",)


class ParamsError(ValueError):
    """params.yaml is missing or unreadable, lacks a section or key a stage needs, or holds a bad value."""


def load_params(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of stage sections at the top level")
    return data


def merge_overrides(target: MutableMapping, overrides: Mapping, where: str = "", changes: list[str] | None = None) -> list[str]:
    """Merge `overrides` into `target` in place; return the changes as 'key: old -> new'.

    Mappings merge key by key; anything else (lists, numbers, strings) replaces the value. A key
    `target` lacks raises ParamsError, so a renamed parameter fails loudly instead of being ignored,
    except inside an OPEN_MAPPINGS mapping (``train.variants``), where a new key adds an entry.
    """
    changes = [] if changes is None else changes
    for key, value in overrides.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in target:
            if where.rsplit(".", 1)[-1] in OPEN_MAPPINGS:
                changes.append(f"{path}: added")
                target[key] = value
                continue
            raise ParamsError(f"{path}: not a key of params.yaml (renamed or misspelt?)")
        if isinstance(value, Mapping) and isinstance(target[key], Mapping):
            merge_overrides(target[key], value, path, changes)
        elif target[key] != value:
            changes.append(f"{path}: {target[key]!r} -> {value!r}")
            target[key] = value
    return changes


def profile_path(params_path: str | Path, name: str) -> Path:
    return Path(params_path).parent / PROFILES_DIR / f"{name}.yaml"


def load_section(path: str | Path, section: str, profile: str | None = None) -> dict[str, Any]:
    """The `section` mapping of the params file at `path`, merged with its profile's `section`
    (`profile`, when given, instead of the file's `profile:` key)."""
    data = load_params(path)
    if section not in data or not isinstance(data[section], dict):
        raise ParamsError(f"{path}: no '{section}:' section (stages read their own section only)")
    params = data[section]
    name = data.get(PROFILE_KEY) if profile is None else profile
    if name is None:
        return params
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ParamsError(f"{path}: profile must be the name of a file in {PROFILES_DIR}/, got {name!r}")
    overlay_file = profile_path(path, name)
    overlay = load_params(overlay_file) if overlay_file.is_file() else None
    if overlay is None:
        raise ParamsError(f"{path}: profile {name!r}: {overlay_file} not found")
    if section not in overlay or not isinstance(overlay[section], dict):
        raise ParamsError(f"{overlay_file}: no '{section}:' section (write '{section}: {{}}' when the "
                          f"profile changes nothing there; DVC tracks it as a parameter)")
    try:
        merge_overrides(params, overlay[section], section)
    except ParamsError as exc:
        raise ParamsError(f"{overlay_file}: {exc}") from None
    return params


def load_shared(path: str | Path, key: str) -> Any:
    """The top-level `key` of SHARED_KEYS from the params file itself: `profile` (None when unset)
    or a shared section such as `mlflow:`, which a profile may not set (it would be ignored)."""
    if key not in SHARED_KEYS:
        raise ParamsError(f"{path}: {key!r} is not a shared key ({', '.join(SHARED_KEYS)}); stages read their own section")
    data = load_params(path)
    if key == PROFILE_KEY:
        return data.get(PROFILE_KEY)
    if not isinstance(data.get(key), dict):
        raise ParamsError(f"{path}: no '{key}:' section at the top level (train, train_gan and evaluate read it)")
    name = data.get(PROFILE_KEY)
    if isinstance(name, str) and name:
        overlay_file = profile_path(path, name)
        if overlay_file.is_file() and key in load_params(overlay_file):
            raise ParamsError(f"{overlay_file}: '{key}:' is set in params.yaml only (profiles override stage "
                              f"sections; the profile tag is the profile's name)")
    return data[key]


def section_source(path: str | Path) -> str:
    """Where a stage's merged section comes from, for error messages: 'params.yaml + profiles/tiny.yaml'."""
    name = load_params(path).get(PROFILE_KEY)
    return f"{path} + {profile_path(path, name)}" if isinstance(name, str) and name else str(path)


# --------------------------------------------------------------------------- typed sections

T = TypeVar("T")
AT_LEAST_1 = {"min": 1}  # dataclasses.field(metadata=AT_LEAST_1): an int that must be >= 1 (else >= 0)


def parse(tp: type[T], value: Any, where: str, minimum: int = 0) -> T:
    """`value` (a params.yaml mapping or scalar) as the typed, frozen `tp`, checked key by key.

    `tp` is a dataclass, Literal, bool, int, float, str, tuple[X, ...], dict or X | None; an error
    names `where` (file and key) and what was expected or allowed.
    """
    origin = get_origin(tp)
    if is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ParamsError(f"{where}: expected a mapping with keys {', '.join(f.name for f in fields(tp))}")
        required = {f.name for f in fields(tp) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        known = {f.name for f in fields(tp)}
        if missing := sorted(required - set(value)):
            raise ParamsError(f"{where}: missing key(s) {', '.join(missing)}")
        if unknown := sorted(set(value) - known):
            raise ParamsError(f"{where}: unknown key(s) {', '.join(unknown)} (valid: {', '.join(sorted(known))})")
        hints, meta = get_type_hints(tp), {f.name: f.metadata for f in fields(tp)}
        return tp(**{k: parse(hints[k], v, f"{where}.{k}", meta[k].get("min", 0)) for k, v in value.items()})
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None
        options = [a for a in get_args(tp) if a is not type(None)]
        if len(options) > 1:  # the loop union is resolved by the stage, never from the file
            raise ParamsError(f"{where}: ambiguous type")
        return parse(options[0], value, where, minimum)
    if origin is Literal:
        if value not in get_args(tp):
            raise ParamsError(f"{where}: {value!r} is not one of {', '.join(map(str, get_args(tp)))}")
        return value
    if tp is bool or tp is str:
        if not isinstance(value, tp):
            raise ParamsError(f"{where}: expected a {tp.__name__}, got {value!r}")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ParamsError(f"{where}: expected an integer, got {value!r}")
        if value < minimum:
            raise ParamsError(f"{where}: {value} is less than {minimum}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = " (YAML reads 2e-4 as a string: write 2.0e-4)" if isinstance(value, str) else ""
            raise ParamsError(f"{where}: expected a number, got {value!r}{hint}")
        return float(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        return tuple(parse(get_args(tp)[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    raise TypeError(f"{where}: no rule for {tp}")



# --------------------------------------------------------------------------- the stage sections

OnError = Literal["fail", "skip"]  # facesr.data.errors.ON_ERROR: what a bad input file does


@dataclass(frozen=True)
class DownloadParams:
    """params.yaml's `download:` section; facesr.data.download.download takes these keywords."""

    source: Literal["url", "archive", "folder", "synthetic"]  # facesr.data.download.SOURCES
    url: str
    sha256: str  # "" = trust on first use; download() checks the 64 hex digits
    archive: str
    folder: str
    synthetic_count: int = field(metadata=AT_LEAST_1)
    synthetic_size: int = field(metadata=AT_LEAST_1)
    seed: int
    retries: int
    backoff_s: float
    workers: int = field(metadata=AT_LEAST_1)
    on_error: OnError


@dataclass(frozen=True)
class MergeMasksParams:
    """params.yaml's `merge_masks:` section (merge_masks() checks the part names themselves)."""

    parts: tuple[str, ...]
    mask_size: int = field(metadata=AT_LEAST_1)
    workers: int = field(metadata=AT_LEAST_1)
    on_error: OnError


@dataclass(frozen=True)
class DownscaleParams:
    """params.yaml's `downscale:` section (downscale() checks split_counts against the faces found)."""

    kernel: Literal["bicubic_aa", "bicubic"]  # facesr.data.downscale.KERNELS
    hr_size: int = field(metadata=AT_LEAST_1)
    scale: int = field(metadata=AT_LEAST_1)
    split: Literal["thesis", "official", "counts"]  # facesr.data.downscale.SPLIT_METHODS
    split_counts: dict[str, Any] | None
    workers: int = field(metadata=AT_LEAST_1)
    on_error: OnError


@dataclass(frozen=True)
class EvaluateParams:
    """params.yaml's `evaluate:` section."""

    models: tuple[str, ...]
    lpips_net: Literal["alex", "vgg"]  # facesr.metrics.perceptual.LPIPS
    batch_size: int = field(metadata=AT_LEAST_1)
    max_images: int  # 0 = the whole test split
    save_parsing: int
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["auto", "fp32", "bf16"]
    channels_last: Literal["auto", True, False]


@dataclass(frozen=True)
class ReportParams:
    """params.yaml's `report:` section."""

    title: str
    grid_faces: int
    worst_faces: int
    worst_by: str
    crop: tuple[int, ...]  # [y, x, h, w] of the Fig. 4.3 zoom (load_report checks the shape)
    crop_faces: int
    parsing_faces: int


@dataclass(frozen=True)
class Mlflow:
    """params.yaml's top-level `mlflow:` section, shared by train, train_gan and evaluate."""

    tracking_uri: str  # $MLFLOW_TRACKING_URI wins (facesr.tracking.tracking_uri)
    experiment: str


@dataclass(frozen=True)
class RunContext:
    """What a tracked stage (train, train_gan, evaluate) reads besides its section."""

    profile: str | None  # params.yaml's `profile:`, MLflow's `profile` tag
    mlflow: Mlflow


def load_section_as(params_path: str | Path, section: str, tp: type[T]) -> T:
    """The `section` of the params file (with its profile's overrides) as the dataclass `tp`."""
    return parse(tp, load_section(params_path, section), f"{section_source(params_path)}: {section}")


def load_download(params_path: str | Path) -> DownloadParams:
    return load_section_as(params_path, "download", DownloadParams)


def load_merge_masks(params_path: str | Path) -> MergeMasksParams:
    return load_section_as(params_path, "merge_masks", MergeMasksParams)


def load_downscale(params_path: str | Path) -> DownscaleParams:
    return load_section_as(params_path, "downscale", DownscaleParams)


def load_evaluate(params_path: str | Path) -> EvaluateParams:
    return load_section_as(params_path, "evaluate", EvaluateParams)


def load_report(params_path: str | Path) -> ReportParams:
    params = load_section_as(params_path, "report", ReportParams)
    crop = params.crop
    if len(crop) != 4 or crop[2] < 1 or crop[3] < 1:
        raise ParamsError(f"{section_source(params_path)}: report.crop: expected [y, x, h, w] with h, w >= 1, "
                          f"got {list(crop)}")
    return params


def load_context(params_path: str | Path) -> RunContext:
    """The top-level `profile:` and `mlflow:` of the params file itself (a profile sets neither)."""
    return RunContext(profile=parse(str | None, load_shared(params_path, PROFILE_KEY), f"{params_path}: {PROFILE_KEY}"),
                      mlflow=parse(Mlflow, load_shared(params_path, "mlflow"), f"{params_path}: mlflow"))


def as_params(params: Any) -> dict[str, Any]:
    """A parsed section back in its params.yaml form (tuples as lists), for MLflow's params and tags:
    the same names, values and hash as the section as read."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(params).items()}
