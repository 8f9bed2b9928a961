"""The metrics JSON files of the train, train_gan and evaluate stages, as typed, frozen results.

`TrainSummary` is ``metrics/train.json`` and ``metrics/train_gan.json`` (facesr.train.driver
builds and writes it); `EvalSummary` is ``metrics/eval.json`` (facesr.evaluate builds it, the
report reads it). These dataclasses are the one definition of both files: each writes its file
(`to_json`, `write`) and reads it back (`read`, `from_dict`), and nothing else formats or parses
them.

The bytes are those the stages wrote before these types existed, so that ``dvc metrics``, the runs
already on disk and the demo's committed numbers read the same:

- train JSON: ``json.dumps(..., indent=2, sort_keys=True)`` of every field, numbers as given;
- eval JSON: ``indent=2`` in the writer's order (models in ``evaluate.models`` order, each with its
  metrics in ``compute_metrics`` order and then ``n_images``; then ``comparisons``; then ``seeds``
  when there are any), every float rounded to 6 decimals except the p-values (a small one would
  read 0); a metric no face had is null.

Neither file carries a version key (adding one would change eval.json's bytes): reading checks the
structure instead, key by key, and a file of another shape is a `ResultsError` naming the file, the
key and what was expected. Numbers are kept as read (an int stays an int), so that writing a file
read back gives its bytes again.

Import-light on purpose (no torch, no numpy): the report and ``facesr --help`` import it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from facesr.fileio import atomic_write_text, read_json
from facesr.metrics.spec import HEADLINE_NAMES, RESERVED

# eval.json's precision; the p-values are written in full
DECIMALS = 6
N_IMAGES = "n_images"


class ResultsError(ValueError):
    """A metrics JSON file is not of its stage's format; the message names the file and the key."""


# ---------------------------------------------------------------------------------------------------
# metrics/train.json, metrics/train_gan.json


@dataclass(frozen=True)
class TrainIdentity:
    """What every trial of a stage shares in its run identity (facesr.train.checkpoint.RunIdentity):
    the prepared data's digest, the sha256 of the GAN's init file ("" for train), the code digest."""

    data: str
    init: str
    code: str


@dataclass(frozen=True)
class TrainTracking:
    """Where the stage's MLflow parent run is."""

    tracking_uri: str
    experiment: str
    parent_run_id: str


@dataclass(frozen=True)
class TrainSelection:
    """The rule that picked each variant's exported trial (the `select:` section)."""

    metric: str
    mode: str


@dataclass(frozen=True)
class TrialEntry:
    """One Ray trial of the stage, finished or failed (`error` set, `metrics` None)."""

    name: str  # <variant>-<fingerprint[:12]>: its workdir and MLflow run name
    variant: str
    fingerprint: str
    error: str | None
    mlflow_run_id: str | None
    metrics: dict[str, float] | None  # its final validation metrics
    step: int
    resumed_from: int
    lpips_skipped: str | None
    train_s: float  # seconds in training steps, across resumes
    node_id: str | None  # the Ray node it finished on


@dataclass(frozen=True)
class VariantTrial:
    """A trial as its variant lists it: its generator under <models> and whether it is the export."""

    name: str  # from the search keys that vary, seed first: seed1, seed0-lr0.00025
    seed: int
    point: dict[str, Any]  # its search point
    run: str  # the TrialEntry.name
    file: str | None  # trials/<variant>/<name>.pt under <models>; None for a failed trial
    val_psnr: float | None
    exported: bool


@dataclass(frozen=True)
class VariantEntry:
    """A variant's exported generator: the best of its trials by the selection rule."""

    trial: str
    fingerprint: str
    metrics: dict[str, float]
    step: int
    resumed_from: int
    train_s: float
    model: str  # <models>/<variant>.pt
    registered_model: str  # models:/<registered_name>/<version>
    lpips_skipped: str | None
    exported_trial: str  # the VariantTrial.name of the export
    trials: tuple[VariantTrial, ...]


@dataclass(frozen=True)
class TrainSummary:
    """``metrics/train.json`` / ``metrics/train_gan.json``: every trial and each variant's export."""

    stage: str
    smoke_test: bool
    select: TrainSelection
    identity: TrainIdentity
    mlflow: TrainTracking
    variants: dict[str, VariantEntry]
    trials: tuple[TrialEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def write(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def from_dict(cls, data: Any, source: str = "train metrics") -> TrainSummary:
        """The summary in `data` (a parsed train JSON); `source` names it in errors."""
        return _parse(cls, data, source, "")

    @classmethod
    def read(cls, path: str | Path, *, missing: str = "not found") -> TrainSummary:
        return cls.from_dict(read_json(path, ResultsError, missing=missing), str(path))


# ---------------------------------------------------------------------------------------------------
# metrics/eval.json


@dataclass(frozen=True)
class ModelScores:
    """A model's means over the test faces: metric -> mean (None where no face had the metric)."""

    metrics: dict[str, float | None]  # in compute_metrics' order, which is the file's
    n_images: int

    def __post_init__(self) -> None:
        if N_IMAGES in self.metrics:
            raise ResultsError(f"ModelScores: {N_IMAGES!r} is a field of its own, not a metric")

    @classmethod
    def from_dict(cls, data: Any, source: str = "eval metrics", path: str = "") -> ModelScores:
        """From ``{metric: mean, ..., "n_images": N}`` (eval.json's entry of one model, and
        `facesr.evaluate.EvalResult.summary`'s); every headline metric is required."""
        scores = _parse(dict[str, Any], data, source, path)
        missing = [k for k in (*HEADLINE_NAMES, N_IMAGES) if k not in scores]
        if missing:
            _fail(source, path, f"missing {', '.join(missing)}")
        metrics = {k: _parse(float | None, v, source, _key(path, k)) for k, v in scores.items() if k != N_IMAGES}
        return cls(metrics, _parse(int, scores[N_IMAGES], source, _key(path, N_IMAGES)))


@dataclass(frozen=True)
class Comparison:
    """Paired difference a - b of one headline metric over the faces both were scored on
    (facesr.metrics.paired.paired_difference)."""

    mean_diff: float
    ci95: tuple[float, float]  # percentile bootstrap interval of the mean difference
    p_value: float | None  # two-sided Wilcoxon signed-rank; None with fewer than 2 faces
    n: int

    @property
    def significant(self) -> bool:
        """Whether the interval excludes 0 (facesr.metrics.paired.significant)."""
        from facesr.metrics.paired import significant

        return significant(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Any, source: str = "comparison", path: str = "") -> Comparison:
        return _parse(cls, data, source, path)


@dataclass(frozen=True)
class SeedSpread:
    """One headline metric over a model's trials (one per seed): the mean and sample sd of their means."""

    mean: float | None
    sd: float | None  # None with fewer than 2 seeds
    n_seeds: int

    @classmethod
    def from_dict(cls, data: Any, source: str = "seed spread", path: str = "") -> SeedSpread:
        return _parse(cls, data, source, path)


@dataclass(frozen=True)
class EvalSummary:
    """``metrics/eval.json``: the means per model, the paired comparisons and the spread over seeds.

    `comparisons` is keyed ``"<a>-<b>"`` (a listed after b), then metric; None leaves the key out
    of the file (an empty mapping is written as ``{}``). `seeds` is keyed model, then metric; empty
    leaves the key out.
    """

    models: dict[str, ModelScores]
    comparisons: dict[str, dict[str, Comparison]] | None = None
    seeds: dict[str, dict[str, SeedSpread]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if reserved := [m for m in self.models if m in RESERVED]:
            raise ResultsError(f"EvalSummary: {', '.join(reserved)} is a reserved key, not a model name")

    def to_json(self) -> str:
        data: dict[str, Any] = {m: {**{k: _round(v) for k, v in s.metrics.items()}, N_IMAGES: s.n_images}
                                for m, s in self.models.items()}
        if self.comparisons is not None:
            data["comparisons"] = {
                pair: {k: {"mean_diff": _round(c.mean_diff), "ci95": [_round(v) for v in c.ci95],
                           "p_value": c.p_value, "n": c.n} for k, c in per_metric.items()}
                for pair, per_metric in self.comparisons.items()}
        if self.seeds:
            data["seeds"] = {model: {k: {"mean": _round(s.mean), "sd": _round(s.sd), "n_seeds": s.n_seeds}
                                     for k, s in per_metric.items()} for model, per_metric in self.seeds.items()}
        return json.dumps(data, indent=2) + "\n"

    def write(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def from_dict(cls, data: Any, source: str = "eval metrics") -> EvalSummary:
        """The summary in `data` (a parsed eval.json); `source` names it in errors."""
        if not isinstance(data, Mapping):
            _fail(source, "", "expected {model: {metric: value}} (an evaluate stage's eval.json)")
        models = {m: ModelScores.from_dict(s, source, m) for m, s in data.items() if m not in RESERVED}
        if not models:
            _fail(source, "", "no model in it (expected {model: {metric: value}})")
        comparisons = _parse(dict[str, dict[str, Comparison]] | None, data.get("comparisons"), source, "comparisons")
        seeds = _parse(dict[str, dict[str, SeedSpread]], data.get("seeds", {}), source, "seeds")
        return cls(models, comparisons, seeds)

    @classmethod
    def read(cls, path: str | Path, *, missing: str = "not found") -> EvalSummary:
        return cls.from_dict(read_json(path, ResultsError, missing=missing), str(path))


# ---------------------------------------------------------------------------------------------------
# one reader and one plain-data writer for every type above


def _round(value: Any) -> Any:
    return round(value, DECIMALS) if isinstance(value, float) else value


def _plain(value: Any) -> Any:
    """JSON-able data of a result: dataclasses as dicts, tuples as lists."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _key(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _fail(source: str, path: str, problem: str) -> typing.NoReturn:
    raise ResultsError(f"{source}: {path}: {problem}" if path else f"{source}: {problem}")


def _parse(tp: Any, value: Any, source: str, path: str) -> Any:
    """`value` checked against the type `tp` (one of those used above) and built as it.

    Nothing is converted (an int stays an int where a float is expected), so what is read writes
    back to the same bytes; a mismatch is a ResultsError naming `source` and the key `path`.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        names = [f.name for f in dataclasses.fields(tp)]
        if not isinstance(value, Mapping):
            _fail(source, path, f"expected a mapping with keys {', '.join(names)}, got {value!r}")
        if missing := [k for k in names if k not in value]:
            _fail(source, path, f"missing key(s) {', '.join(missing)}")
        if unknown := sorted(str(k) for k in value if k not in names):
            _fail(source, path, f"unknown key(s) {', '.join(unknown)} (expected {', '.join(names)})")
        hints = typing.get_type_hints(tp)
        return tp(**{k: _parse(hints[k], value[k], source, _key(path, k)) for k in names})
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _parse(inner, value, source, path)
    if tp is Any:
        return value
    if tp is bool or tp is str:
        if not isinstance(value, tp):
            _fail(source, path, f"expected a {'boolean' if tp is bool else 'string'}, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(source, path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(source, path, f"expected a number, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            _fail(source, path, f"expected a list, got {value!r}")
        if args[-1] is Ellipsis:
            return tuple(_parse(args[0], v, source, _key(path, i)) for i, v in enumerate(value))
        if len(value) != len(args):
            _fail(source, path, f"expected a list of {len(args)}, got {value!r}")
        return tuple(_parse(a, v, source, _key(path, i)) for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, Mapping):
            _fail(source, path, f"expected a mapping, got {value!r}")
        if bad := [k for k in value if not isinstance(k, str)]:
            _fail(source, path, f"keys must be strings, got {bad!r}")
        return {k: _parse(args[1], v, source, _key(path, k)) for k, v in value.items()}
    raise TypeError(f"facesr.results: no rule for {tp!r} at {path}")
