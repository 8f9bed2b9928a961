"""Typed, frozen configs of the training stages, parsed once at the stage boundary.

The field names are the params.yaml keys (docs/training.md): `parse` turns a section into these
dataclasses or raises a ParamsError naming the file, the key and the allowed values. Below the
stage nothing indexes a dict of params or casts a value again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from facesr.config import (
    AT_LEAST_1,
    ParamsError,
    RunContext,
    load_context,
    load_section,
    parse,
    section_source,
)


@dataclass(frozen=True)
class RMSProp:
    alpha: float
    eps: float
    momentum: float
    weight_decay: float


@dataclass(frozen=True)
class Schedule:
    name: Literal["none", "multistep", "cosine"]
    milestones: tuple[float, ...]  # fractions of `steps`, so a profile can change steps alone
    gamma: float
    eta_min: float


@dataclass(frozen=True)
class LossWeights:
    w_coarse: float
    w_parsing: float
    w_fine: float


@dataclass(frozen=True)
class Loop:
    """The loop settings both stages share (`train.loop` and `train_gan.loop`)."""

    seed: int
    rmsprop: RMSProp
    lr_schedule: Schedule
    batch_size: int = field(metadata=AT_LEAST_1)
    steps: int
    loss_weights: LossWeights
    hflip: bool
    log_every: int = field(metadata=AT_LEAST_1)
    val_every: int = field(metadata=AT_LEAST_1)
    ckpt_every: int = field(metadata=AT_LEAST_1)
    val_faces: int
    sample_faces: int
    val_lpips: bool
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["fp32", "bf16", "auto"]  # facesr.device.resolve_precision: auto = bf16 where fast
    channels_last: Literal["auto", True, False]
    compile: bool  # torch.compile of the generator's forward
    num_workers: int


@dataclass(frozen=True)
class ContentLoop(Loop):
    lr: float


@dataclass(frozen=True)
class GanLoop(Loop):
    lr_g: float
    lr_d: float
    alpha: float  # G loss = alpha * content + beta * VGG + gamma * adversarial
    beta: float
    gamma: float
    perceptual_net: Literal["vgg19", "vgg16"]
    discriminator_args: dict[str, Any]


@dataclass(frozen=True)
class Trial:
    """One training run: a variant's model (none for the GAN: it comes from --init) and its loop."""

    variant: str
    model: str | None
    model_args: dict[str, Any] | None
    loop: ContentLoop | GanLoop

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def params_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Variant:
    registered_name: str
    model: str | None = None
    model_args: dict[str, Any] | None = None
    loop: dict[str, Any] = field(default_factory=dict)  # this variant's loop overrides


@dataclass(frozen=True)
class Select:
    metric: str
    mode: Literal["max", "min"]


@dataclass(frozen=True)
class Resources:
    """What one trial asks Ray for.

    `cpus_per_trial` and `gpus_per_trial` are per worker: a trial of `workers_per_trial` N > 1 is a
    Ray Train run of N workers (DDP) that asks for N times as much. 1 is today's single-process
    trial, with no process group.
    """

    cpus_per_trial: int = field(metadata=AT_LEAST_1)
    gpus_per_trial: int  # asked for only where the cluster has GPUs
    workers_per_trial: int = field(default=1, metadata=AT_LEAST_1)


@dataclass(frozen=True)
class StageConfig:
    stage: str
    variants: dict[str, Variant]
    select: Select
    resources: Resources
    max_failures: int
    context: RunContext  # params.yaml's `profile:` (MLflow's `profile` tag) and `mlflow:`
    trials: tuple[Trial, ...]
    # per trial (same order): its search point and its name within the variant, from the keys
    # that vary (trial_label): the file <models>/trials/<variant>/<name>.pt
    points: tuple[dict[str, Any], ...]
    labels: tuple[str, ...]
    section: dict[str, Any]  # as read, for MLflow's params


# ------------------------------------------------------------------------------------ parsing

def expand_grid(search: Any, where: str) -> list[dict[str, Any]]:
    """The cartesian product of the search lists, in a stable order."""
    if not isinstance(search, Mapping):
        raise ParamsError(f"{where}: expected a mapping of loop key -> list of values")
    for key, values in search.items():
        if not isinstance(values, list) or not values:
            raise ParamsError(f"{where}.{key}: expected a non-empty list of values")
    keys = sorted(search)
    return [dict(zip(keys, values)) for values in itertools.product(*(search[k] for k in keys))]


def _label_value(value: Any) -> str:
    text = repr(value) if isinstance(value, float) else value if isinstance(value, str) else (
        json.dumps(value, sort_keys=True, separators=(",", ":")))
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", str(text))


def trial_label(point: Mapping[str, Any], points: list[dict[str, Any]], seed: int) -> str:
    """A trial's name within its variant: the values of the search keys that vary across `points`,
    seed first, then by key (`seed0`, `seed0-lr0.00025`); `seed<N>` when none varies."""
    varying = sorted((k for k in point if len({json.dumps(p[k], sort_keys=True) for p in points}) > 1),
                     key=lambda k: (k != "seed", k))
    return "-".join(f"{k}{_label_value(point[k])}" for k in varying) or f"seed{seed}"


SECTION_KEYS = ("variants", "search", "select", "loop", "resources", "max_failures", "smoke_test")


def parse_stage(section: Mapping[str, Any], *, stage: str, gan: bool, smoke_test: bool, context: RunContext,
                source: str = "params.yaml") -> StageConfig:
    """A `train`/`train_gan` section (and the shared `profile:` and `mlflow:`, load_context) ->
    StageConfig with one Trial per (variant x search point).

    A trial's loop is the section's `loop`, then the variant's own `loop` overrides (e.g. more
    steps for an equal-wall-clock baseline), then the grid point, then the smoke-test sizes. A key
    is searched or set, not both: one in `search` and in `loop` (or a variant's `loop`) is an error,
    since the grid point would silently win.
    """
    where = f"{source}: {stage}"
    if missing := [k for k in SECTION_KEYS if k not in section]:
        raise ParamsError(f"{where}: missing key(s) {', '.join(missing)}")
    if unknown := sorted(set(section) - set(SECTION_KEYS)):
        raise ParamsError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if not isinstance(section["variants"], Mapping) or not section["variants"]:
        raise ParamsError(f"{where}.variants: expected a mapping of variant name -> settings")
    variants = {name: parse(Variant, spec, f"{where}.variants.{name}") for name, spec in section["variants"].items()}
    loop_type = GanLoop if gan else ContentLoop
    base = dict(section["loop"]) if isinstance(section["loop"], Mapping) else {}
    smoke = dict(section["smoke_test"]) if smoke_test else {}
    points = expand_grid(section["search"], f"{where}.search")
    settings = sorted(f.name for f in dataclasses.fields(loop_type))
    overrides = {"loop": base, "search": points[0], "smoke_test": smoke,
                 **{f"variants.{name}.loop": spec.loop for name, spec in variants.items()}}
    for label, keys in overrides.items():
        if unknown := sorted(set(keys) - set(settings)):
            raise ParamsError(f"{where}.{label}: {', '.join(unknown)} not a training setting "
                              f"(valid: {', '.join(settings)})")
        if label != "search" and label != "smoke_test" and (both := sorted(set(keys) & set(points[0]))):
            raise ParamsError(f"{where}: {', '.join(both)} set in both search and {label} (the search value "
                              f"would win); keep {'it' if len(both) == 1 else 'each'} in one place")
    trials, trial_points, labels = [], [], []
    for name, spec in variants.items():
        if gan and spec.model is not None:
            raise ParamsError(f"{where}.variants.{name}: the GAN's generator comes from --init; drop 'model'")
        if not gan and (spec.model is None or spec.model_args is None):
            raise ParamsError(f"{where}.variants.{name}: missing key(s) model, model_args")
        for point in points:
            loop = parse(loop_type, {**base, **spec.loop, **point, **smoke}, f"{where}.loop (variant {name})")
            trials.append(Trial(name, spec.model, spec.model_args, loop))
            trial_points.append(dict(point))
            labels.append(trial_label(point, points, loop.seed))
        if len(set(labels[-len(points):])) < len(points):
            raise ParamsError(f"{where}.search: two search points give the same trial name "
                              f"({', '.join(labels[-len(points):])}); use values that differ as text")
    resources = parse(Resources, section["resources"], f"{where}.resources")
    for trial in trials:
        # the profile's batch_size is the global batch: each worker takes an equal share of it
        if trial.loop.batch_size % resources.workers_per_trial:
            raise ParamsError(f"{where}.loop.batch_size: {trial.loop.batch_size} (variant {trial.variant}) is not "
                              f"divisible by {stage}.resources.workers_per_trial {resources.workers_per_trial}; "
                              "batch_size is the global batch, split evenly across the workers")
    return StageConfig(stage=stage, variants=variants, select=parse(Select, section["select"], f"{where}.select"),
                       resources=resources,
                       max_failures=parse(int, section["max_failures"], f"{where}.max_failures"),
                       context=context,
                       trials=tuple(trials), points=tuple(trial_points), labels=tuple(labels), section=dict(section))


def load_stage(params_path: str | Path, stage: str, *, gan: bool, smoke_test: bool) -> StageConfig:
    """The `stage` section of the params file (with its profile's overrides) and its RunContext, parsed."""
    return parse_stage(load_section(params_path, stage), stage=stage, gan=gan, smoke_test=smoke_test,
                       context=load_context(params_path), source=section_source(params_path))


def trial_from_dict(data: Mapping[str, Any]) -> Trial:
    """Rebuild a Trial from `Trial.to_dict()` (Ray's config, a checkpoint's params)."""
    loop_type = ContentLoop if data["model"] is not None else GanLoop
    return Trial(data["variant"], data["model"], data["model_args"], parse(loop_type, data["loop"], "trial.loop"))
