"""The one list of the metrics that evaluate, the report and ``facesr score`` compute, name and format.

Adding a metric touches two files: its function ``(sr, hr) -> Tensor (B,)`` (in
``facesr/metrics/quality.py`` or a module of its own under ``facesr/metrics/``) and its
:class:`Metric` entry below, whose ``compute`` is that function (imported here, so go-to-definition
leads to it). ``compute_metrics`` calls every entry's function; ``evaluate`` checks and orders the headline keys from here; the report takes its
Table 4.1 columns, labels, best-value direction and number formats from here, and ``facesr score``
its columns; nothing else lists them. LPIPS (a network the caller builds once), the region PSNRs and
the parsing mIoU (they need the parsing maps) are computed by ``compute_metrics`` itself; keys
without an entry (the region PSNRs ``psnr_<region>``) format like the entry their name starts with.

Import-light on purpose (no torch): ``facesr --help`` and the report read it, so the metric functions
import torch inside their bodies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from facesr.metrics.quality import psnr, sharpness, ssim


@dataclass(frozen=True)
class Metric:
    """A metric key of ``compute_metrics``, how it is shown, and which way is better."""

    name: str
    label: str
    lower_is_better: bool = False
    decimals: int = 4
    headline: bool = False  # a Table 4.1 column, required in eval.json, compared pairwise
    scored: bool = False  # a column of `facesr score`
    # the function `compute_metrics` calls as compute(sr, hr, *args); None for the metrics it computes
    # itself (LPIPS, the region PSNRs, the parsing mIoU)
    compute: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()

    def format(self, value: float | None, *, signed: bool = False) -> str:
        """The value at this metric's precision; ``-`` for a missing or non-finite one."""
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return "-"
        return f"{value:+.{self.decimals}f}" if signed else f"{value:.{self.decimals}f}"


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("psnr", "PSNR", decimals=2, headline=True, scored=True, compute=psnr, args=("rgb",)),
        Metric("ssim", "SSIM", headline=True, scored=True, compute=ssim, args=("rgb",)),
        Metric("lpips", "LPIPS", lower_is_better=True, headline=True, scored=True),
        Metric("psnr_y", "PSNR-Y (crop 8)", decimals=2, headline=True, scored=True, compute=psnr, args=("y",)),
        Metric("ssim_y", "SSIM-Y (crop 8)", headline=True, scored=True, compute=ssim, args=("y",)),
        Metric("sharpness", "sharpness", scored=True, compute=sharpness),
        Metric("parsing_miou", "parsing mIoU"),
    )
}

# Top-level keys of eval.json that are not models (evaluate writes them; every reader skips them).
RESERVED = ("comparisons", "seeds")

HEADLINE: tuple[Metric, ...] = tuple(m for m in METRICS.values() if m.headline)
HEADLINE_NAMES: tuple[str, ...] = tuple(m.name for m in HEADLINE)
SCORED_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS.values() if m.scored)


def metric(key: str) -> Metric:
    """The entry of `key`; an unlisted key borrows the format of the entry its name starts with."""
    if key in METRICS:
        return METRICS[key]
    base = METRICS.get(key.split("_", 1)[0])
    return Metric(key, key, decimals=base.decimals if base else 4)


def fmt(key: str, value: float | None, *, signed: bool = False) -> str:
    return metric(key).format(value, signed=signed)
