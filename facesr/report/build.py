"""Build the report folder from the evaluate stage's outputs and the training curves."""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facesr.report import figures
from facesr.report.reference import LABELS, LITERATURE, THESIS_TABLE

HEADLINE = ("psnr", "ssim", "lpips", "psnr_y", "ssim_y")
# Lower is better for these; the table marks the best value of each column.
LOWER_IS_BETTER = {"lpips"}


class ReportError(ValueError):
    """An input of the report is missing or malformed; the message names the file."""


def read_eval(path: Path) -> dict[str, dict[str, float]]:
    if not path.is_file():
        raise ReportError(f"{path}: evaluation metrics not found (run the evaluate stage first)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not data or not all(isinstance(v, dict) for v in data.values()):
        raise ReportError(f"{path}: expected {{model: {{metric: value}}}}")
    for model, scores in data.items():
        missing = [k for k in HEADLINE if k not in scores]
        if missing:
            raise ReportError(f"{path}: model '{model}' lacks {', '.join(missing)}")
    return data


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


def _fmt(key: str, value: float | None) -> str:
    if not isinstance(value, (int, float)) or not np.isfinite(value):
        return "-"
    return f"{value:.2f}" if key.startswith("psnr") else f"{value:.4f}"


def _best(summary: Mapping[str, Mapping[str, float]], key: str) -> str | None:
    vals = {
        m: s[key] for m, s in summary.items() if isinstance(s.get(key), (int, float)) and np.isfinite(s[key])
    }
    if not vals:
        return None
    pick = min if key in LOWER_IS_BETTER else max
    return pick(vals, key=vals.get)


def table_rows(
    summary: Mapping[str, Mapping[str, float]],
) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Table 4.1 beside the thesis: header, cells, and which cells are the best of their column."""
    header = [
        "Method",
        "PSNR",
        "SSIM",
        "LPIPS",
        "PSNR-Y (crop 8)",
        "SSIM-Y (crop 8)",
        "thesis PSNR",
        "thesis SSIM",
        "thesis LPIPS",
        "ΔPSNR vs thesis",
    ]
    best = {k: _best(summary, k) for k in HEADLINE}
    rows, marks = [], []
    for model, scores in summary.items():
        ref = THESIS_TABLE.get(model)
        cells = [LABELS.get(model, model)] + [_fmt(k, scores.get(k)) for k in HEADLINE]
        mark = [False] + [best[k] == model for k in HEADLINE]
        if ref is not None:
            cells += [f"{ref[1]:.2f}", f"{ref[2]:.4f}", f"{ref[3]:.4f}", f"{scores['psnr'] - ref[1]:+.2f}"]
        else:
            cells += ["-", "-", "-", "-"]
        mark += [False] * 4
        rows.append(cells)
        marks.append(mark)
    return header, rows, marks


def ablation_rows(
    summary: Mapping[str, Mapping[str, float]], train_seconds: Mapping[str, float], reference: str = "method1"
) -> tuple[list[str], list[list[str]]]:
    """Models beyond Table 4.1 (ablations, the equal-wall-clock baseline) against `reference`."""
    extras = [m for m in summary if m not in THESIS_TABLE]
    if not extras or reference not in summary:
        return [], []
    ref = summary[reference]
    header = ["Model", "PSNR", "SSIM", "LPIPS", f"ΔPSNR vs {reference}", f"ΔSSIM vs {reference}", "training min"]
    rows = []
    for m in [reference, *extras]:
        s = summary[m]
        minutes = train_seconds.get(m)
        rows.append([m, _fmt("psnr", s.get("psnr")), _fmt("ssim", s.get("ssim")), _fmt("lpips", s.get("lpips")),
                     "-" if m == reference else f"{s['psnr'] - ref['psnr']:+.2f}",
                     "-" if m == reference else f"{s['ssim'] - ref['ssim']:+.4f}",
                     "-" if minutes is None else f"{minutes / 60:.1f}"])
    return header, rows


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


def extra_rows(summary: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[list[str]]]:
    """Per-region PSNR, parsing mIoU and sharpness: every metric beyond the headline ones."""
    keys: list[str] = []
    for scores in summary.values():
        keys += [k for k in scores if k not in HEADLINE and k != "n_images" and k not in keys]
    header = ["Method"] + keys
    rows = [[LABELS.get(m, m)] + [_fmt(k, s.get(k)) for k in keys] for m, s in summary.items()]
    return header, rows


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
    grid_faces: int = 6,
    worst_faces: int = 4,
    worst_by: str = "method1",
    crop: Sequence[int] = (40, 16, 48, 96),
    crop_faces: int = 4,
    parsing_faces: int = 4,
    title: str = "facesr report",
) -> dict[str, Any]:
    """Write `out`/index.html, `out`/report.md and `out`/img/*.png; return what went in."""
    out = Path(out)
    images = Path(images)
    summary = read_eval(Path(eval_json))
    rows = read_per_image(Path(per_image_csv))
    load = _Images(images)
    img_dir = out / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    # figures show the table's models; ablations and other extra trials get their own table
    models = [m for m in summary if m in THESIS_TABLE] or list(summary)
    per_face = {(r["id"], r["model"]): r for r in rows}
    ids = sorted({r["id"] for r in rows}, key=[r["id"] for r in rows].index)
    titles = {(f, m): f"{r['psnr']:.2f} dB" for (f, m), r in per_face.items()}
    labels = {"lr": "LR (x8 nearest)", "hr": "HR", **LABELS}
    sections: list[tuple[str, str, list[str]]] = []  # (heading, text, [image paths relative to out])

    grid_ids = ids[:grid_faces]
    figures.image_grid(img_dir / "grid.png", ["lr", *models, "hr"], grid_ids, load, titles, labels=labels)
    sections.append(
        (
            "Test faces (Fig. 4.2)",
            f"The first {len(grid_ids)} test faces: LR input (16x16, shown x8 nearest), every model, HR. "
            "Numbers are each face's PSNR (RGB).",
            ["img/grid.png"],
        )
    )

    if "method1" in models and "method2" in models:
        crop_ids = ids[:crop_faces]
        figures.image_grid(
            img_dir / "gan_crops.png", ["method1", "method2", "hr"], crop_ids, load, titles, crop=tuple(crop)
        )
        y, x, h, w = crop
        sections.append(
            (
                "With and without the GAN (Fig. 4.3)",
                f"Crop y={y}..{y + h}, x={x}..{x + w} (eyes and brows of an aligned face), nearest-neighbour "
                "zoom: Method 1 (MSE) against Method 2 (GAN) and HR.",
                ["img/gan_crops.png"],
            )
        )

    rank_model = worst_by if worst_by in models else models[-1]
    ranked = sorted((r for r in rows if r["model"] == rank_model), key=lambda r: r["psnr"])
    worst_ids = [r["id"] for r in ranked[:worst_faces]]
    if worst_ids:
        figures.image_grid(
            img_dir / "worst.png", ["lr", *models, "hr"], worst_ids, load, titles, labels=labels
        )
        sections.append(
            (
                "Failure cases (Fig. 4.4)",
                f"The {len(worst_ids)} test faces where {LABELS.get(rank_model, rank_model)} has its lowest PSNR.",
                ["img/worst.png"],
            )
        )

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
            sections.append(
                (
                    "Predicted parsing maps",
                    "The prior branch's 11 parsing maps (threshold 0.5, strongest part per pixel) over the HR "
                    "face, beside the annotated maps.",
                    ["img/parsing.png"],
                )
            )

    curve_imgs = []
    for label, folder in curve_dirs.items():
        for csv_path in sorted(Path(folder).glob("*.csv")) if Path(folder).is_dir() else []:
            x_name, cols = figures.read_curve(csv_path)
            name = f"curves_{label}_{csv_path.stem}.png"
            if cols and figures.curves_figure(img_dir / name, f"{label}: {csv_path.stem}", x_name, cols):
                curve_imgs.append(f"img/{name}")
    sections.append(
        (
            "Training curves",
            "From the train and train_gan stages' curve CSVs." if curve_imgs else "No curve CSVs were found.",
            curve_imgs,
        )
    )

    header, cells, marks = table_rows({m: summary[m] for m in models})
    x_header, x_cells = extra_rows(summary)
    ablation = ablation_rows(summary, train_seconds(curve_dirs))
    n_images = max(int(s.get("n_images", 0)) for s in summary.values())
    intro = (
        f"{n_images} test faces. PSNR/SSIM/LPIPS in the thesis protocol (RGB, no crop; SSIM gaussian "
        "σ=1.5; LPIPS v0.1 AlexNet); PSNR-Y/SSIM-Y in the literature protocol (BT.601 Y, 8-pixel crop). "
        "Best of each column in bold."
    )
    literature = [[k, f"{v[0]:.2f}", f"{v[1]:.4f}"] for k, v in LITERATURE.items()]
    (out / "index.html").write_text(
        _html(title, intro, header, cells, marks, x_header, x_cells, literature, sections, ablation)
    )
    (out / "report.md").write_text(
        _markdown(title, intro, header, cells, marks, x_header, x_cells, literature, sections, ablation)
    )
    return {"models": list(summary), "faces": n_images, "figures": sorted(p.name for p in img_dir.glob("*.png"))}


def _md_table(header: list[str], rows: list[list[str]], marks: list[list[bool]] | None = None) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r, row in enumerate(rows):
        cells = [f"**{c}**" if marks and marks[r][i] else c for i, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


ABLATION_TEXT = ("Every other trained variant on the same test faces, beside Method 1: ablations (a part of "
                 "Method 1 removed or changed) and baselines trained for another budget. Training minutes "
                 "are the time spent in training steps (validation excluded) on the machine that ran them.")


def _markdown(title, intro, header, cells, marks, x_header, x_cells, literature, sections, ablation=([], [])) -> str:
    parts = [
        f"# {title}",
        "",
        "## Table 4.1: ours beside the thesis",
        "",
        intro,
        "",
        _md_table(header, cells, marks),
        "",
    ]
    if ablation[0]:
        parts += ["## Ablations and extra trials", "", ABLATION_TEXT, "", _md_table(*ablation), ""]
    if len(x_header) > 1:
        parts += ["## Per-region PSNR, parsing mIoU and sharpness", "", _md_table(x_header, x_cells), ""]
    parts += [
        "Literature (CelebA-HQ, RGB with an 8-pixel crop, other data and protocol):",
        "",
        _md_table(["Method", "PSNR", "SSIM"], literature),
        "",
    ]
    for heading, text, imgs in sections:
        parts += [f"## {heading}", "", text, ""] + [f"![{heading}]({p})" for p in imgs] + [""]
    return "\n".join(parts)


def _html_table(header, rows, marks=None, css="") -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = []
    for r, row in enumerate(rows):
        tds = "".join(
            f"<td><b>{e(c)}</b></td>" if marks and marks[r][i] else f"<td>{e(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{tds}</tr>")
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _html(title, intro, header, cells, marks, x_header, x_cells, literature, sections, ablation=([], [])) -> str:
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.6em 0 1.2em}th,td{border:1px solid #bbb;padding:.25em .6em;"
        "text-align:right}th{background:#eee}td:first-child{text-align:left}img{max-width:100%;"
        "border:1px solid #ddd;margin:.3em 0}.note{color:#555}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        "<h2>Table 4.1: ours beside the thesis</h2>",
        f'<p class="note">{e(intro)}</p>',
        _html_table(header, cells, marks, "main"),
    ]
    if ablation[0]:
        parts += ["<h2>Ablations and extra trials</h2>", f'<p class="note">{e(ABLATION_TEXT)}</p>',
                  _html_table(*ablation)]
    if len(x_header) > 1:
        parts += ["<h2>Per-region PSNR, parsing mIoU and sharpness</h2>", _html_table(x_header, x_cells)]
    parts += [
        '<p class="note">Literature (CelebA-HQ, RGB with an 8-pixel crop, other data and protocol):</p>',
        _html_table(["Method", "PSNR", "SSIM"], literature),
    ]
    for heading, text, imgs in sections:
        parts += [f"<h2>{e(heading)}</h2>", f"<p>{e(text)}</p>"]
        parts += [f'<img src="{e(p)}" alt="{e(heading)}">' for p in imgs]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
