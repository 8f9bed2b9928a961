"""Evaluation of every model of the thesis' Table 4.1 on the test split.

Models: ``bicubic`` (built, no weights), ``srresnet`` and ``method1`` (``models/train/<name>.pt``),
``method2`` (``models/gan/method2.pt``), any other train variant (``models/train/<variant>.pt``), and
the stage's ``--extra-model NAME=FILE`` models (`extra_model_paths`: e.g. an exported .onnx file,
run in ONNX Runtime, scored like the others).
Each is run on the test split's LR faces and scored with `facesr.metrics.compute_metrics` against
the HR faces: the thesis protocol (RGB PSNR/SSIM, LPIPS alex), the literature protocol (Y channel,
8-pixel crop), PSNR per face region from the HR parsing maps, the sharpness ratio, and, for models
with a prior branch, the mean IoU of their predicted parsing maps.

Outputs (written atomically; nothing half-written is left if a model fails):
- ``eval.json`` (its format is `facesr.results.EvalSummary`, built by `eval_summary`):
  ``{model: {metric: mean over the test faces, ..., "n_images": N}}``, plus the
  reserved key ``comparisons``: ``{"<a>-<b>": {metric: {"mean_diff", "ci95": [lo, hi], "p_value",
  "n"}}}`` for every pair, `a` listed after `b` in ``evaluate.models`` (so ``method1-srresnet``),
  per headline metric: the paired difference a - b over the test faces (facesr.metrics.paired);
  and, where the train stages left two or more trial generators of a model beside its file
  (``trials/<model>/<trial>.pt``, one per seed), the reserved key ``seeds``: ``{model: {metric:
  {"mean", "sd", "n_seeds"}}}``, the spread of the trials' means;
- the per-image CSV: one row per (model, face), long format, columns ``model,id,<metrics>``; the
  trials' rows (model ``<model>@<trial>``, e.g. ``method1@seed1``) follow those of the models;
- an images folder for the report: ``lr/{id}.png``, ``hr/{id}.png``, ``<model>/{id}.png`` (the SR
  faces exactly as scored, since metrics quantise to uint8 too) and, for models with a prior branch,
  ``<model>/parsing.npz`` (ids, uint8 maps) for the first ``save_parsing`` faces.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facesr.metrics.spec import HEADLINE_NAMES as HEADLINE
from facesr.metrics.spec import RESERVED
from facesr.results import Comparison, EvalSummary, ModelScores, SeedSpread

TABLE_MODELS = ("bicubic", "srresnet", "method1", "method2")


class EvaluationError(ValueError):
    """A model file or the test data cannot be evaluated; the message names the file and problem."""


@dataclass
class EvalResult:
    """Means per model, per-image rows, and the ids whose images were saved."""

    summary: dict[str, dict[str, float]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)


def model_paths(models_dir: str | Path, gan_dir: str | Path, names: Sequence[str] = TABLE_MODELS) -> dict:
    """Where each model's generator file lives (None for bicubic, which has no weights).

    Beyond the table's four, any other name is a train variant exported to ``<models_dir>/<name>.pt``
    (the ablations and the equal-wall-clock baseline of profiles/mini-cpu-ablation.yaml).
    """
    known = {
        "bicubic": None,
        "srresnet": Path(models_dir) / "srresnet.pt",
        "method1": Path(models_dir) / "method1.pt",
        "method2": Path(gan_dir) / "method2.pt",
    }
    bad = [n for n in names if not _is_model_name(n)]
    if bad:
        raise EvaluationError(f"evaluate.models: {', '.join(map(repr, bad))} is not a model or variant name")
    if len(set(names)) != len(names):
        raise EvaluationError(f"evaluate.models: a model is listed twice in {list(names)}")
    return {n: known[n] if n in known else Path(models_dir) / f"{n}.pt" for n in names}


def _is_model_name(name: Any) -> bool:
    return isinstance(name, str) and name.replace("_", "").replace("-", "").isalnum() and name not in RESERVED


def extra_model_paths(specs: Sequence[str], taken: Sequence[str] = ()) -> dict[str, Path]:
    """``{name: file}`` of the stage's ``--extra-model NAME=FILE`` flags: models scored beside those of
    ``evaluate.models`` (`taken`), e.g. an exported ``method1.onnx`` (`facesr export`), so that the file
    one ships has its own row in eval.json. FILE is a generator .pt or an exported .onnx."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            raise EvaluationError(f"--extra-model {spec!r}: expected NAME=FILE (a .pt generator or an .onnx export)")
        if not _is_model_name(name):
            raise EvaluationError(f"--extra-model {spec!r}: {name!r} is not a model name (letters, digits, _ and -)")
        if name in out or name in taken:
            raise EvaluationError(f"--extra-model {spec!r}: the name {name!r} is already scored")
        out[name] = Path(path)
    return out


def table_predictor(name: str, path: Path | None, device: str, precision):
    """What `evaluate` runs for a model: a `Predictor` over its generator (no_grad, not inference_mode:
    the SR faces go on into LPIPS, whose weights are parameters), or, for an exported .onnx file,
    ONNX Runtime's `facesr.inference.onnx_runtime.OnnxPredictor` (fp32: `precision` does not apply)."""
    from facesr.models.predictor import Predictor

    if path is not None and path.suffix == ".onnx":
        from facesr.inference.onnx_runtime import OnnxPredictor

        if not path.is_file():
            raise EvaluationError(f"{path}: ONNX file for '{name}' not found")
        return OnnxPredictor.from_file(path, device)
    return Predictor(load_table_model(name, path, device), device=device, precision=precision,
                     inference_mode=False)


def load_table_model(name: str, path: Path | None, device: str):
    """The model in eval mode, on `device`; a missing or unreadable file names itself."""
    from facesr.models import build_model, load_generator

    if path is None:
        return build_model(name).to(device).eval()
    if not path.is_file():
        raise EvaluationError(f"{path}: generator file for '{name}' not found (did its stage run?)")
    model, _meta = load_generator(path, map_location=device)
    return model


def _to_tensor(batch: np.ndarray, device: str):
    import torch

    # uint8 NHWC at file I/O, float NCHW in [0, 1] everywhere else (DEVELOPING.md).
    return torch.from_numpy(np.array(batch)).to(device).permute(0, 3, 1, 2).float() / 255.0


def _to_uint8(images) -> np.ndarray:
    return (images.clamp(0, 1) * 255.0).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def evaluate(
    data_root: str | Path,
    paths: Mapping[str, Path | None],
    *,
    lpips_net: str,
    batch_size: int,
    max_images: int,
    device: str,
    precision: str,
    channels_last: str | bool,
    images_dir: str | Path | None = None,
    save_parsing: int = 0,
    progress: bool = True,
) -> EvalResult:
    """Score every model of `paths` on the test split of the prepared data at `data_root` (a path
    ending in .onnx is an exported generator, run in ONNX Runtime: `table_predictor`).

    The settings are the `evaluate:` section's (no defaults here that could drift from params.yaml).
    `max_images` > 0 keeps the first faces only (smoke runs); 0 means the whole split. With
    `images_dir`, the LR/HR/SR faces are saved there, and the predicted parsing maps of the first
    `save_parsing` faces. `precision`/`channels_last` resolve as in training
    (`facesr.device.resolve_precision`); the scores are always computed on fp32 images.
    """
    import torch

    from facesr.data import load_split, read_manifest
    from facesr.data.util import progress as progress_bar
    from facesr.device import resolve_device, resolve_precision
    from facesr.metrics import LPIPS, compute_metrics
    from facesr.metrics.means import MeanAccumulator

    if batch_size < 1:
        raise EvaluationError(f"evaluate.batch_size must be >= 1, got {batch_size}")
    device = resolve_device(device, setting="evaluate.device")
    prec = resolve_precision(device, precision, channels_last, setting="evaluate")
    manifest = read_manifest(data_root)
    parts = list(manifest["parts"])
    test = load_split(data_root, "test")
    n = len(test["ids"]) if max_images <= 0 else min(max_images, len(test["ids"]))
    if n == 0:
        raise EvaluationError(f"{data_root}: the test split is empty; nothing to evaluate")
    ids = [int(i) for i in test["ids"][:n]]
    lpips_fn = LPIPS(net=lpips_net, device=device)

    result = EvalResult(ids=ids)
    images = Path(images_dir) if images_dir is not None else None
    if images is not None:
        for sub, key in (("lr", "lr"), ("hr", "hr")):
            _save_pngs(images / sub, ids, np.asarray(test[key][:n]))

    for name, path in paths.items():
        predictor = table_predictor(name, path, device, prec)
        means = MeanAccumulator()
        kept_parsing: list[np.ndarray] = []
        bar = progress_bar(total=n, desc=f"evaluate {name}", unit="face", enabled=progress)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            lr = _to_tensor(test["lr"][start:stop], device)
            hr = _to_tensor(test["hr"][start:stop], device)
            gt_parsing = torch.from_numpy(np.array(test["parsing"][start:stop])).to(device).float() / 255.0
            sr, pred = predictor(lr)
            scores = compute_metrics(
                sr, hr, lpips=lpips_fn, parsing=gt_parsing, pred_parsing=pred, parts=parts
            )
            scores = {k: v.detach().cpu().double().numpy() for k, v in scores.items()}
            for i in range(stop - start):
                row = {"model": name, "id": ids[start + i]}
                row.update({k: float(v[i]) for k, v in scores.items()})
                result.rows.append(row)
            # Region PSNR is NaN where a face lacks the region: averaged over the faces that have it.
            means.add(scores)
            if images is not None:
                _save_pngs(images / name, ids[start:stop], _to_uint8(sr))
                if pred is not None and sum(len(p) for p in kept_parsing) < save_parsing:
                    kept_parsing.append((pred.clamp(0, 1) * 255).round().byte().cpu().numpy())
            bar.update(stop - start)
        bar.close()
        missing = [k for k in HEADLINE if k not in means.sums]
        if missing:
            raise EvaluationError(f"facesr.metrics.compute_metrics returned no {', '.join(missing)}")
        result.summary[name] = means.means() | {"n_images": n}
        if images is not None and kept_parsing:
            if not (images / "hr" / "parsing.npz").is_file():
                # The HR maps of the same faces, for the report's predicted-vs-annotated overlay.
                gt = np.asarray(test["parsing"][:save_parsing])
                np.savez_compressed(images / "hr" / "parsing.npz", ids=np.asarray(ids[: len(gt)]), parsing=gt)
            maps = np.concatenate(kept_parsing)[:save_parsing]
            np.savez_compressed(images / name / "parsing.npz", ids=np.asarray(ids[: len(maps)]), parsing=maps)
        del predictor
    return result


def _save_pngs(folder: Path, ids: Sequence[int], images: np.ndarray) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in zip(ids, images):
        Image.fromarray(np.ascontiguousarray(img)).save(folder / f"{i}.png")


def per_image_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Long-format CSV text: model, id, then every metric any row has (sorted, headline first)."""
    keys: list[str] = []
    for row in rows:
        for k in row:
            if k not in keys and k not in ("model", "id"):
                keys.append(k)
    ordered = [k for k in HEADLINE if k in keys] + sorted(k for k in keys if k not in HEADLINE)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["model", "id", *ordered], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def comparisons(rows: Sequence[Mapping[str, Any]], models: Sequence[str]) -> dict[str, dict[str, Comparison]]:
    """Paired differences of every pair of `models` per headline metric, from the per-image rows.

    Keyed ``"<a>-<b>"`` with `a` listed after `b`, on the faces both were scored on.
    """
    from facesr.metrics.paired import paired_difference

    faces = {m: {r["id"]: r for r in rows if r["model"] == m} for m in models}
    out: dict[str, dict[str, Comparison]] = {}
    for j, a in enumerate(models):
        for b in models[:j]:
            key = f"{a}-{b}"
            if key in out:
                raise EvaluationError(f"evaluate.models: two pairs of models share the name {key!r}")
            ids = [i for i in faces[b] if i in faces[a]]
            out[key] = {
                k: Comparison.from_dict(paired_difference([faces[a][i][k] for i in ids],
                                                          [faces[b][i][k] for i in ids]), "paired_difference", k)
                for k in HEADLINE
            }
    return out


def trial_paths(paths: Mapping[str, Path | None]) -> dict[str, dict[str, Path]]:
    """Per model of `paths` with two or more trial generators beside its file, ``{trial: file}``.

    A model trained once has one trial, the same weights as its exported file: nothing to add.
    """
    from facesr.models.registry import TRIALS_DIR

    def natural(p: Path):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)]

    out: dict[str, dict[str, Path]] = {}
    for name, path in paths.items():
        folder = path.parent / TRIALS_DIR / name if path is not None else None
        files = sorted(folder.glob("*.pt"), key=natural) if folder is not None and folder.is_dir() else []
        if len(files) >= 2:
            out[name] = {f.stem: f for f in files}
    return out


def seed_spread(trials: Mapping[str, Mapping[str, Path]],
                summary: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, SeedSpread]]:
    """``{model: {metric: SeedSpread(mean, sd, n_seeds)}}`` over the means of each model's trials
    (`summary` keyed ``<model>@<trial>``), per headline metric; sd is the sample sd (ddof 1)."""
    out: dict[str, dict[str, SeedSpread]] = {}
    for model, files in trials.items():
        out[model] = {}
        for k in HEADLINE:
            values = np.array([summary[f"{model}@{t}"][k] for t in files], dtype=np.float64)
            values = values[np.isfinite(values)]
            out[model][k] = SeedSpread(mean=float(values.mean()) if values.size else None,
                                       sd=float(values.std(ddof=1)) if values.size > 1 else None,
                                       n_seeds=int(values.size))
    return out


def eval_summary(summary: Mapping[str, Mapping[str, float | None]],
                 comparisons: Mapping[str, Mapping[str, Comparison]] | None = None,
                 seeds: Mapping[str, Mapping[str, SeedSpread]] | None = None) -> EvalSummary:
    """eval.json as an `EvalSummary`: the means of `EvalResult.summary` (with their ``n_images``),
    the comparisons (None: no such key in the file) and the seeds (empty or None: none)."""
    return EvalSummary(models={m: ModelScores.from_dict(s, "evaluate", m) for m, s in summary.items()},
                       comparisons=None if comparisons is None else {p: dict(c) for p, c in comparisons.items()},
                       seeds={m: dict(s) for m, s in (seeds or {}).items()})


def summary_json(summary: Mapping[str, Mapping[str, float | None]],
                 comparisons: Mapping[str, Mapping[str, Comparison]] | None = None,
                 seeds: Mapping[str, Mapping[str, SeedSpread]] | None = None) -> str:
    """eval.json's text (`EvalSummary.to_json`, which defines the format: a metric no face had is
    null, values rounded to 6 decimals, p-values not)."""
    return eval_summary(summary, comparisons, seeds).to_json()


def log_to_mlflow(
    summary: Mapping[str, Mapping[str, float]],
    *,
    params: Mapping[str, Any],
    mlflow_params: Mapping[str, Any],
    profile: str | None = None,
    artifacts: Sequence[Path] = (),
    data: str | Path | None = None,
    model_files: Mapping[str, Path | None] | None = None,
) -> str:
    """One MLflow run (`evaluate`) holding `<model>.<metric>` for every model; returns its run id.

    Same experiment, URI rule and tag names as the training runs (facesr.tracking), so the
    evaluation sits beside the runs that produced the models in the MLflow UI. `profile` is the
    run's `profile` tag (params.yaml's `profile:`, facesr.config.RunContext; None tags it "unset").

    With `data` (the prepared data folder scored) the run logs its test split as a "testing" dataset
    input. With `model_files` too (`model_paths`' {model: generator file}), every registered version
    holding one of the files gets the model's test metrics and the data's digest as tags, and each
    registered name's `champion` alias moves as `facesr.mlflow_model.CHAMPION_RULE` says; the run's
    tags `<model>.registered_model` name the versions. A smoke run (params' `smoke_test`) leaves the
    registry as it is.
    """
    import mlflow

    from facesr import tracking

    if model_files is not None and data is None:
        raise EvaluationError("log_to_mlflow: model_files needs the data folder they were scored on (data=...)")
    uri = tracking.tracking_uri(mlflow_params)
    tracking.set_experiment(uri, str(mlflow_params["experiment"]))
    # An inherited MLFLOW_RUN_ID would make start_run resume that run instead of starting one.
    os.environ.pop("MLFLOW_RUN_ID", None)
    with mlflow.start_run(
        run_name="evaluate", tags=tracking.run_tags("evaluate", params, profile)
    ) as run:
        mlflow.log_params(tracking.flat_params(params))
        metrics = {
            f"{model}.{k}": float(v)
            for model, scores in summary.items()
            for k, v in scores.items()
            if isinstance(v, (int, float)) and v is not None and np.isfinite(v)
        }
        mlflow.log_metrics(metrics)
        for path in artifacts:
            if Path(path).is_file():
                mlflow.log_artifact(str(path))
        digest = tracking.log_dataset(data, "testing", split="test") if data is not None else None
        if model_files is not None and digest is not None and not params.get("smoke_test"):
            from facesr.mlflow_model import record_evaluation

            for model, path in model_files.items():
                if path is None or model not in summary or not Path(path).is_file():
                    continue
                scored = record_evaluation(uri, path, summary[model], data_sha256=digest,
                                           n_images=int(summary[model]["n_images"]), eval_run_id=run.info.run_id)
                if scored:
                    mlflow.set_tag(f"{model}.registered_model", ", ".join(s.uri for s in scored))
        return run.info.run_id
