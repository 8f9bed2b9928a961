"""Build the report folder from the evaluate stage's outputs and the training curves.

What the report says is built once here as a `document.Document`; `document` renders it as HTML and
Markdown. Columns, labels, formats and the better direction of each metric come from
facesr.metrics.spec.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facesr.metrics.spec import HEADLINE, METRICS, fmt
from facesr.report import figures
from facesr.report.document import Document, Image, Section, Table, Text, to_html, to_markdown
from facesr.report.reference import LABELS, LITERATURE, THESIS_TABLE
from facesr.results import Comparison, EvalSummary, ModelScores, ResultsError, SeedSpread

BASELINE = "srresnet"  # the model the paired "vs" column compares with


class ReportError(ValueError):
    """An input of the report is missing or malformed; the message names the file."""


def read_eval(path: Path) -> EvalSummary:
    """eval.json, checked as `facesr.results.EvalSummary` (a file of another shape names its key)."""
    try:
        return EvalSummary.read(path, missing="evaluation metrics not found (run the evaluate stage first)")
    except ResultsError as exc:
        raise ReportError(str(exc)) from exc


def read_per_image(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ReportError(f"{path}: per-image metrics not found (run the evaluate stage first)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "model" not in rows[0] or "id" not in rows[0] or "psnr" not in rows[0]:
        raise ReportError(f"{path}: expected a CSV with columns model, id, psnr, ...")
    out = []
    for row in rows:
        parsed: dict[str, Any] = {"model": row["model"], "id": int(row["id"])}
        for k, v in row.items():
            if k not in ("model", "id") and v not in ("", None):
                parsed[k] = float(v)
        out.append(parsed)
    return out


def _best(summary: Mapping[str, ModelScores], key: str) -> str | None:
    vals = {
        m: s.metrics[key] for m, s in summary.items()
        if isinstance(s.metrics.get(key), (int, float)) and np.isfinite(s.metrics[key])
    }
    if not vals:
        return None
    pick = min if METRICS[key].lower_is_better else max
    return pick(vals, key=vals.get)


def paired_cell(key: str, comparison: Comparison | None) -> str:
    """``+0.19 [+0.12, +0.26]*``: mean paired difference, its 95% CI, ``*`` where the CI excludes 0."""
    if comparison is None:
        return "-"
    lo, hi = comparison.ci95
    mark = "*" if comparison.significant else ""
    return f"{fmt(key, comparison.mean_diff, signed=True)} [{fmt(key, lo, signed=True)}, " \
           f"{fmt(key, hi, signed=True)}]{mark}"


def table_rows(summary: Mapping[str, ModelScores],
               comparisons: Mapping[str, Mapping[str, Comparison]] | None = None) -> Table:
    """Table 4.1 beside the thesis, best of each column marked; with the paired comparisons and
    SRResNet among the models, a "vs SRResNet" column (PSNR difference, 95% CI)."""
    vs = BASELINE in summary and bool(comparisons)
    header = ["Method", *(m.label for m in HEADLINE), "thesis PSNR", "thesis SSIM", "thesis LPIPS",
              "ΔPSNR vs thesis"] + ([f"vs {LABELS[BASELINE]}"] if vs else [])
    best = {m.name: _best(summary, m.name) for m in HEADLINE}
    rows, marks = [], []
    for model, scores in summary.items():
        ref = THESIS_TABLE.get(model)
        cells = [LABELS.get(model, model)] + [m.format(scores.metrics.get(m.name)) for m in HEADLINE]
        if ref is not None:
            cells += [fmt("psnr", ref[1]), fmt("ssim", ref[2]), fmt("lpips", ref[3]),
                      fmt("psnr", scores.metrics["psnr"] - ref[1], signed=True)]
        else:
            cells += ["-", "-", "-", "-"]
        if vs:
            cells.append(paired_cell("psnr", (comparisons.get(f"{model}-{BASELINE}") or {}).get("psnr")))
        rows.append(cells)
        marks.append([False] + [best[m.name] == model for m in HEADLINE] + [False] * (len(header) - 1 - len(HEADLINE)))
    return Table(header, rows, marks)


def comparison_rows(summary: Mapping[str, ModelScores],
                    comparisons: Mapping[str, Mapping[str, Comparison]]) -> Table | None:
    """Every headline metric's paired difference of each model against SRResNet; None without both."""
    pairs = [(m, comparisons[f"{m}-{BASELINE}"]) for m in summary if f"{m}-{BASELINE}" in comparisons]
    if BASELINE not in summary or not pairs:
        return None
    header = ["Method", *(f"Δ{m.label}" for m in HEADLINE), "faces"]
    rows = [[LABELS.get(m, m), *(paired_cell(h.name, c.get(h.name)) for h in HEADLINE),
             str(c[HEADLINE[0].name].n)] for m, c in pairs]
    return Table(header, rows)


def seed_rows(seeds: Mapping[str, Mapping[str, SeedSpread]]) -> Table | None:
    """Mean ± sd over each model's seeds (eval.json's `seeds`), per headline metric; None without."""
    if not seeds:
        return None
    header = ["Method", *(m.label for m in HEADLINE), "seeds"]
    rows = []
    for model, spread in seeds.items():
        cells = [f"{m.format(spread[m.name].mean)} ± {m.format(spread[m.name].sd)}"
                 if m.name in spread else "-" for m in HEADLINE]
        rows.append([LABELS.get(model, model), *cells, str(max(v.n_seeds for v in spread.values()))])
    return Table(header, rows)


def ablation_rows(
    summary: Mapping[str, ModelScores], train_seconds: Mapping[str, float], reference: str = "method1"
) -> Table | None:
    """Models beyond Table 4.1 (ablations, the equal-wall-clock baseline) against `reference`."""
    extras = [m for m in summary if m not in THESIS_TABLE]
    if not extras or reference not in summary:
        return None
    ref = summary[reference].metrics
    shown, compared = ("psnr", "ssim", "lpips"), ("psnr", "ssim")
    header = ["Model", *(METRICS[k].label for k in shown), *(f"Δ{METRICS[k].label} vs {reference}" for k in compared),
              "training min"]
    rows = []
    for m in [reference, *extras]:
        s = summary[m].metrics
        minutes = train_seconds.get(m)
        rows.append([m, *(fmt(k, s.get(k)) for k in shown),
                     *("-" if m == reference else fmt(k, s[k] - ref[k], signed=True) for k in compared),
                     "-" if minutes is None else f"{minutes / 60:.1f}"])
    return Table(header, rows)


def train_seconds(curve_dirs: Mapping[str, str | Path]) -> dict[str, float]:
    """Each curve CSV's last `train_s` (seconds in training steps), keyed by its file stem."""
    out: dict[str, float] = {}
    for folder in curve_dirs.values():
        for csv_path in sorted(Path(folder).glob("*.csv")) if Path(folder).is_dir() else []:
            _, cols = figures.read_curve(csv_path)
            values = cols.get("train_s")
            if values is not None and np.isfinite(values).any():
                out[csv_path.stem] = float(values[np.isfinite(values)][-1])
    return out


def extra_rows(summary: Mapping[str, ModelScores]) -> Table | None:
    """Per-region PSNR, parsing mIoU and sharpness: every metric beyond the headline ones."""
    keys: list[str] = []
    for scores in summary.values():
        keys += [k for k in scores.metrics if k not in METRICS or not METRICS[k].headline if k not in keys]
    if not keys:
        return None
    return Table(["Method"] + keys,
                 [[LABELS.get(m, m)] + [fmt(k, s.metrics.get(k)) for k in keys] for m, s in summary.items()])


class _Images:
    """Loads `<images>/<folder>/<id>.png` as uint8 arrays, with a clear error for a missing face."""

    def __init__(self, root: Path):
        self.root = root

    def __call__(self, folder: str, face: int) -> np.ndarray:
        from PIL import Image

        path = self.root / folder / f"{face}.png"
        if not path.is_file():
            raise ReportError(f"{path}: image missing from the evaluate stage's output")
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))
        if folder == "lr":
            # LR is 16x16: nearest x8 shows its pixels at the SR faces' size.
            img = img.repeat(8, axis=0).repeat(8, axis=1)
        return img


def _load_parsing(path: Path) -> dict[int, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        return {int(i): p for i, p in zip(z["ids"], z["parsing"])}


def build_report(
    *,
    eval_json: str | Path,
    per_image_csv: str | Path,
    images: str | Path,
    curve_dirs: Mapping[str, str | Path],
    out: str | Path,
    grid_faces: int,
    worst_faces: int,
    worst_by: str,
    crop: Sequence[int],
    crop_faces: int,
    parsing_faces: int,
    title: str,
) -> dict[str, Any]:
    """Write `out`/index.html, `out`/report.md and `out`/img/*.png; return what went in.

    Every setting is the `report:` section of params.yaml (stages/report.py passes them); none has a
    default here, so that no second copy of a param can drift from it.
    """
    out = Path(out)
    images = Path(images)
    scores = read_eval(Path(eval_json))
    summary, comparisons = scores.models, scores.comparisons or {}
    rows = read_per_image(Path(per_image_csv))
    load = _Images(images)
    img_dir = out / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    # figures show the table's models; ablations and other extra trials get their own table
    models = [m for m in summary if m in THESIS_TABLE] or list(summary)
    per_face = {(r["id"], r["model"]): r for r in rows}
    ids = sorted({r["id"] for r in rows}, key=[r["id"] for r in rows].index)
    titles = {(f, m): f"{fmt('psnr', r['psnr'])} dB" for (f, m), r in per_face.items()}
    labels = {"lr": "LR (x8 nearest)", "hr": "HR", **LABELS}
    n_images = max(s.n_images for s in summary.values())

    main = table_rows({m: summary[m] for m in models}, comparisons)
    intro = (
        f"{n_images} test faces. PSNR/SSIM/LPIPS in the thesis protocol (RGB, no crop; SSIM gaussian "
        "σ=1.5; LPIPS v0.1 AlexNet); PSNR-Y/SSIM-Y in the literature protocol (BT.601 Y, 8-pixel crop). "
        "Best of each column in bold."
    )
    blocks: list = [Text(intro, note=True), main]
    if main.header[-1].startswith("vs "):
        legend = VS_LEGEND.format(baseline=LABELS[BASELINE])
        if n_images < FEW_FACES:
            legend += FEW_FACES_TEXT.format(n=n_images)
        blocks.append(Text(legend, note=True))
    blocks += [Text("Literature (CelebA-HQ, RGB with an 8-pixel crop, other data and protocol):", note=True),
               Table(["Method", "PSNR", "SSIM"], [[k, fmt("psnr", v[0]), fmt("ssim", v[1])]
                                                  for k, v in LITERATURE.items()])]
    sections = [Section("Table 4.1: ours beside the thesis", blocks)]
    spread = seed_rows(scores.seeds)
    if spread is not None:
        sections.append(Section("Across seeds", [Text(SEEDS_TEXT, note=True), spread]))
    paired = comparison_rows(summary, comparisons)
    if paired is not None:
        sections.append(Section(f"Paired differences against {LABELS[BASELINE]}",
                                [Text(PAIRED_TEXT.format(baseline=LABELS[BASELINE]), note=True), paired]))
    ablation = ablation_rows(summary, train_seconds(curve_dirs))
    if ablation is not None:
        sections.append(Section("Ablations and extra trials", [Text(ABLATION_TEXT, note=True), ablation]))
    extra = extra_rows(summary)
    if extra is not None:
        sections.append(Section("Per-region PSNR, parsing mIoU and sharpness", [extra]))

    grid_ids = ids[:grid_faces]
    figures.image_grid(img_dir / "grid.png", ["lr", *models, "hr"], grid_ids, load, titles, labels=labels)
    sections.append(Section("Test faces (Fig. 4.2)", [
        Text(f"The first {len(grid_ids)} test faces: LR input (16x16, shown x8 nearest), every model, HR. "
             "Numbers are each face's PSNR (RGB)."),
        Image("img/grid.png")]))

    if "method1" in models and "method2" in models:
        figures.image_grid(
            img_dir / "gan_crops.png", ["method1", "method2", "hr"], ids[:crop_faces], load, titles, crop=tuple(crop)
        )
        y, x, h, w = crop
        sections.append(Section("With and without the GAN (Fig. 4.3)", [
            Text(f"Crop y={y}..{y + h}, x={x}..{x + w} (eyes and brows of an aligned face), nearest-neighbour "
                 "zoom: Method 1 (MSE) against Method 2 (GAN) and HR."),
            Image("img/gan_crops.png")]))

    sections.append(_failure_cases(rows, models, worst_by, worst_faces, img_dir, load, titles, labels))

    gt_maps = _load_parsing(images / "hr" / "parsing.npz")
    prior_models = [m for m in models if (images / m / "parsing.npz").is_file()]
    if prior_models:
        preds = {m: _load_parsing(images / m / "parsing.npz") for m in prior_models}
        face_ids = [f for f in preds[prior_models[0]] if all(f in p for p in preds.values())][:parsing_faces]
        prows = []
        for f in face_ids:
            hr = load("hr", f)
            row = {"HR": hr}
            if f in gt_maps:
                row["HR + annotated maps"] = figures.overlay_parsing(hr, gt_maps[f])
            for m in prior_models:
                row[f"HR + {LABELS.get(m, m)} maps"] = figures.overlay_parsing(hr, preds[m][f])
            prows.append((f, row))
        if prows:
            figures.parsing_figure(img_dir / "parsing.png", prows)
            sections.append(Section("Predicted parsing maps", [
                Text("The prior branch's 11 parsing maps (threshold 0.5, strongest part per pixel) over the HR "
                     "face, beside the annotated maps."),
                Image("img/parsing.png")]))

    curve_imgs = []
    for label, folder in curve_dirs.items():
        for csv_path in sorted(Path(folder).glob("*.csv")) if Path(folder).is_dir() else []:
            x_name, cols = figures.read_curve(csv_path)
            name = f"curves_{label}_{csv_path.stem}.png"
            if cols and figures.curves_figure(img_dir / name, f"{label}: {csv_path.stem}", x_name, cols):
                curve_imgs.append(Image(f"img/{name}"))
    sections.append(Section("Training curves", [
        Text("From the train and train_gan stages' curve CSVs." if curve_imgs else "No curve CSVs were found."),
        *curve_imgs]))

    doc = Document(title, [s for s in sections if s.blocks])
    (out / "index.html").write_text(to_html(doc))
    (out / "report.md").write_text(to_markdown(doc))
    return {"models": list(summary), "faces": n_images, "figures": sorted(p.name for p in img_dir.glob("*.png"))}


def _failure_cases(rows, models, worst_by, worst_faces, img_dir: Path, load, titles, labels) -> Section:
    """Fig. 4.4: the faces where `worst_by` has its lowest PSNR and, with SRResNet evaluated too,
    the faces where Method 1 loses most PSNR to SRResNet."""
    blocks: list = []
    rank_model = worst_by if worst_by in models else models[-1]
    ranked = sorted((r for r in rows if r["model"] == rank_model), key=lambda r: r["psnr"])
    worst_ids = [r["id"] for r in ranked[:worst_faces]]
    if worst_ids:
        figures.image_grid(img_dir / "worst.png", ["lr", *models, "hr"], worst_ids, load, titles, labels=labels)
        blocks += [Text(f"The {len(worst_ids)} test faces where {LABELS.get(rank_model, rank_model)} has its "
                        "lowest PSNR."), Image("img/worst.png")]
    if "method1" in models and BASELINE in models:
        psnr = {(r["id"], r["model"]): r["psnr"] for r in rows}
        faces = [f for (f, m) in psnr if m == "method1" and (f, BASELINE) in psnr]
        losses = sorted(faces, key=lambda f: psnr[(f, "method1")] - psnr[(f, BASELINE)])[:worst_faces]
        if losses:
            diff = {(f, "method1"): f"{fmt('psnr', psnr[(f, 'method1')] - psnr[(f, BASELINE)], signed=True)} dB "
                    f"vs {LABELS[BASELINE]}" for f in losses}
            figures.image_grid(img_dir / "worst_vs_srresnet.png", ["lr", BASELINE, "method1", "hr"], losses, load,
                               titles | diff, labels=labels)
            blocks += [Text(f"The {len(losses)} test faces where Method 1 loses most PSNR to "
                            f"{LABELS[BASELINE]} (Method 1's number is its difference)."),
                       Image("img/worst_vs_srresnet.png")]
    return Section("Failure cases (Fig. 4.4)", blocks)


# Below this many faces a percentile bootstrap interval is known to be too narrow.
FEW_FACES = 20
FEW_FACES_TEXT = (" With only {n} faces the interval is too narrow (a bootstrap over few faces understates the spread): "
                  "read the Wilcoxon p-value in metrics/eval.json as well.")
VS_LEGEND = ("vs {baseline}: the mean per-face PSNR difference (model - {baseline}) with its paired 95% bootstrap "
             "interval over the test faces; * where the interval excludes 0.")
SEEDS_TEXT = ("Each model trained once per seed and every seed's generator scored on the same test faces: the "
              "mean ± sd (sample) of the seeds' means. Table 4.1 shows the exported generator, the seed with the "
              "best validation PSNR (metrics/train.json says which).")
PAIRED_TEXT = ("Each model minus {baseline}, face by face on the same test faces: the mean difference and its "
               "paired 95% bootstrap interval (faces resampled with replacement); * where the interval excludes "
               "0. The Wilcoxon signed-rank p-values are in metrics/eval.json under comparisons.")
ABLATION_TEXT = ("Every other trained variant on the same test faces, beside Method 1: ablations (a part of "
                 "Method 1 removed or changed) and baselines trained for another budget. Training minutes "
                 "are the time spent in training steps (validation excluded) on the machine that ran them.")
