"""The report's figures, drawn with matplotlib's object API (no pyplot: no GUI backend, no global state)."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

# One colour per parsing channel, in SPEC.md's order:
# skin, l_brow, r_brow, l_eye, r_eye, nose, mouth, u_lip, l_lip, l_ear, r_ear
PARSING_COLOURS = np.array(
    [
        [230, 180, 140],
        [120, 60, 20],
        [160, 90, 40],
        [40, 120, 255],
        [0, 200, 255],
        [250, 220, 0],
        [255, 0, 120],
        [220, 30, 30],
        [150, 0, 60],
        [60, 200, 60],
        [0, 140, 70],
    ],
    dtype=np.float32,
)


def _figure(rows: int, cols: int, cell: float = 1.7, aspect: float = 1.0):
    """`aspect` = image height / width, so cropped strips do not sit in square, mostly empty cells."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(cols * cell, rows * (cell * aspect + 0.3) + 0.2), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(pad=0.3)
    fig.savefig(path)
    return path


def image_grid(
    path: Path,
    columns: Sequence[str],
    ids: Sequence[int],
    load: callable,
    titles: Mapping[tuple[int, str], str] | None = None,
    *,
    crop: Sequence[int] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Path:
    """Faces as rows, `columns` (image folders) as columns; `crop` = (y, x, h, w) zooms in."""
    aspect = crop[2] / crop[3] if crop is not None else 1.0
    fig, axes = _figure(len(ids), len(columns), cell=2.2 if crop is not None else 1.7, aspect=aspect)
    for r, face in enumerate(ids):
        for c, col in enumerate(columns):
            img = load(col, face)
            if crop is not None:
                y, x, h, w = crop
                img = img[y : y + h, x : x + w]
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            label = (titles or {}).get((face, col), "")
            heading = (labels or {}).get(col, col) if r == 0 else ""
            ax.set_title("\n".join(t for t in (heading, label) if t), fontsize=7)
    return _save(fig, path)


def overlay_parsing(hr: np.ndarray, parsing: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """HR face (H,W,3 uint8) under the parts of `parsing` (11,H,W uint8 soft maps) above 0.5.

    Each pixel takes the colour of its strongest part; pixels where no part passes 0.5 stay bare.
    """
    soft = parsing.astype(np.float32) / 255.0
    strongest = soft.argmax(axis=0)
    on = soft.max(axis=0) > 0.5
    colour = PARSING_COLOURS[strongest % len(PARSING_COLOURS)]
    out = hr.astype(np.float32)
    out[on] = (1 - alpha) * out[on] + alpha * colour[on]
    return out.round().clip(0, 255).astype(np.uint8)


def parsing_figure(path: Path, rows: Sequence[tuple[int, Mapping[str, np.ndarray]]]) -> Path:
    """One row per face: each named image (HR, HR + annotated maps, HR + predicted maps, ...)."""
    names = list(rows[0][1])
    fig, axes = _figure(len(rows), len(names))
    for r, (face, images) in enumerate(rows):
        for c, name in enumerate(names):
            axes[r, c].imshow(images[name], interpolation="nearest")
            axes[r, c].set_title(f"{name}" + (f"\nface {face}" if c == 0 else ""), fontsize=7)
    return _save(fig, path)


def read_curve(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """A training-curve CSV as (x column name, {column: values}); non-numeric cells become NaN."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        rows = list(reader)
    if not header or not rows:
        return "", {}

    def number(text: str | None) -> float:
        try:
            return float(text) if text not in (None, "") else float("nan")
        except ValueError:
            return float("nan")

    cols = {h: np.array([number(r.get(h)) for r in rows]) for h in header}
    cols = {h: v for h, v in cols.items() if np.isfinite(v).any()}
    x_name = next((h for h in ("step", "iteration", "iter", "epoch") if h in cols), "")
    return x_name, cols


def curves_figure(path: Path, title: str, x_name: str, cols: Mapping[str, np.ndarray]) -> Path | None:
    """Each numeric column of a curve CSV against its step column, one small panel per column."""
    from matplotlib.figure import Figure

    series = [h for h in cols if h != x_name and h not in ("time", "wall_time", "timestamp", "epoch", "train_s")]
    if not series:
        return None
    x = cols[x_name] if x_name else np.arange(len(next(iter(cols.values()))))
    n = len(series)
    ncols = min(3, n)
    nrows = (n + ncols - 1) // ncols
    fig = Figure(figsize=(3.2 * ncols, 2.3 * nrows + 0.3), dpi=100)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    for ax, name in zip(axes.flat, series):
        y = cols[name]
        ok = np.isfinite(y)
        ax.plot(x[ok], y[ok], marker="." if ok.sum() < 30 else None, linewidth=1)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel(x_name or "row", fontsize=7)
        ax.tick_params(labelsize=6)
        if "loss" in name and (y[ok] > 0).all() and ok.sum() > 1 and y[ok].max() / y[ok].min() > 20:
            ax.set_yscale("log")
    fig.suptitle(title, fontsize=9)
    # Leave the top strip to the suptitle, which tight_layout alone would draw over.
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
