"""Paired differences: the bootstrap CI against a plain re-implementation, identical models, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import wilcoxon

from facesr.metrics.paired import RESAMPLES, SEED, PairedError, paired_difference, significant


def plain_bootstrap(d: list[float], resamples: int, seed: int) -> tuple[float, float]:
    """Resample faces with replacement, take each resample's mean, read the 2.5th/97.5th percentiles by
    hand (linear interpolation between order statistics)."""
    n = len(d)
    picks = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    means = sorted(sum(d[i] for i in row) / n for row in picks.tolist())

    def percentile(q: float) -> float:
        pos = q * (len(means) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(means) - 1)
        return means[lo] + (means[hi] - means[lo]) * (pos - lo)

    return percentile(0.025), percentile(0.975)


def test_ci_matches_a_plain_paired_bootstrap():
    rng = np.random.default_rng(7)
    faces = rng.normal(24.0, 2.0, 40)  # most of the spread is the faces, shared by both models
    a = faces + rng.normal(0.15, 0.1, 40)
    b = faces
    got = paired_difference(a, b)
    d = (a - b).tolist()
    lo, hi = plain_bootstrap(d, RESAMPLES, SEED)
    assert got["n"] == 40 and RESAMPLES >= 2000
    assert got["mean_diff"] == pytest.approx(np.mean(d), abs=1e-12)
    assert got["ci95"] == [pytest.approx(lo, abs=5e-4), pytest.approx(hi, abs=5e-4)]
    assert round(got["ci95"][0], 3) == round(lo, 3) and round(got["ci95"][1], 3) == round(hi, 3)
    assert got["p_value"] == pytest.approx(wilcoxon(d).pvalue)
    assert significant(got) and got["ci95"][0] > 0
    # Unpaired, the faces' own spread (sd 2 dB) would swamp a 0.15 dB difference: pairing is the point.
    assert got["ci95"][1] - got["ci95"][0] < 0.1
    # Another seed, another (close) interval: the seed is used.
    assert paired_difference(a, b, seed=1)["ci95"] != got["ci95"]


def test_identical_models_give_zero_and_no_mark():
    a = [24.1, 23.0, 25.7]
    got = paired_difference(a, list(a))
    assert got == {"mean_diff": 0.0, "ci95": [0.0, 0.0], "p_value": 1.0, "n": 3}
    assert not significant(got)


def test_faces_without_both_scores_are_left_out():
    got = paired_difference([20.0, float("nan"), 22.0, 21.0], [19.0, 18.0, float("inf"), 21.5])
    assert got["n"] == 2 and got["mean_diff"] == pytest.approx(0.25)
    assert paired_difference([1.0], [0.5])["p_value"] is None  # one face: no test


def test_bad_input_is_a_clear_error():
    with pytest.raises(PairedError, match="one length"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(PairedError, match="no face has a finite score"):
        paired_difference([float("nan")], [1.0])
