"""Paired comparison of two models scored on the same faces: mean difference, bootstrap CI, Wilcoxon.

The faces are the unit: a resample draws faces with replacement and keeps each face's pair of
scores together, so the interval reflects how much the per-face difference varies, not how much
each model's scores vary (most of which is the faces themselves, shared by both models).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

RESAMPLES = 5000
SEED = 0
CONFIDENCE = 0.95


class PairedError(ValueError):
    """The two score lists cannot be compared (different lengths, no face with both scores)."""


def paired_difference(a: Sequence[float], b: Sequence[float], *, resamples: int = RESAMPLES, seed: int = SEED,
                      confidence: float = CONFIDENCE) -> dict:
    """``{"mean_diff", "ci95": [lo, hi], "p_value", "n"}`` of ``a - b`` face by face.

    Faces where either score is not finite (a region absent) are left out; ``n`` counts the rest.
    The interval is the percentile interval of the mean over `resamples` paired bootstrap
    resamples drawn by ``numpy.random.default_rng(seed)``; the p-value is the two-sided Wilcoxon
    signed-rank test's. Identical scores give a difference of 0, an interval of [0, 0] and p = 1.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise PairedError(f"paired scores need two lists of one length, got shapes {a.shape} and {b.shape}")
    if resamples < 1 or not 0 < confidence < 1:
        raise PairedError(f"resamples must be >= 1 and confidence in (0, 1), got {resamples}, {confidence}")
    both = np.isfinite(a) & np.isfinite(b)
    d = a[both] - b[both]
    n = int(d.size)
    if n == 0:
        raise PairedError("no face has a finite score for both models")
    if not d.any():
        return {"mean_diff": 0.0, "ci95": [0.0, 0.0], "p_value": 1.0, "n": n}
    means = d[_resamples(n, resamples, seed)].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return {"mean_diff": float(d.mean()), "ci95": [float(lo), float(hi)], "p_value": _wilcoxon(d), "n": n}


@functools.lru_cache(maxsize=4)
def _resamples(n: int, resamples: int, seed: int) -> np.ndarray:
    """Face indices of every resample: the same draw for every metric and pair on the same faces."""
    picks = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    picks.flags.writeable = False
    return picks


def _wilcoxon(d: np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value; None where the test is undefined (fewer than 2 faces)."""
    from scipy.stats import wilcoxon

    if d.size < 2:
        return None
    return float(wilcoxon(d).pvalue)


def significant(comparison: dict) -> bool:
    """Whether the interval excludes 0."""
    lo, hi = comparison["ci95"]
    return lo > 0 or hi < 0
