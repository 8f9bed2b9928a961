"""Means over faces that skip NaN: region PSNRs are NaN for a face without that region (eyes
behind sunglasses), and a mean over the test or val faces is over the faces that have it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def finite_sum(values: Any) -> tuple[float, int]:
    """The sum and the number of the finite entries of a float64 batch (B,).

    A numpy array is summed by numpy, a torch tensor by torch (in float64): each caller keeps the
    arithmetic its numbers were always made with (evaluate's arrays, validation's tensors), since
    the two libraries add in different orders and the last bits of a sum would otherwise move.
    """
    if isinstance(values, np.ndarray):
        finite = np.isfinite(values)
        return float(values[finite].sum()), int(finite.sum())
    import torch

    finite = torch.isfinite(values)
    return float(values[finite].double().sum()), int(finite.sum())


class MeanAccumulator:
    """Per-key sums and counts of the finite values of batches; `means()` divides them."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, scores: Mapping[str, Any]) -> None:
        """Add a batch `{key: values (B,)}` (numpy arrays or torch tensors, see `finite_sum`)."""
        for key, values in scores.items():
            total, n = finite_sum(values)
            self.sums[key] = self.sums.get(key, 0.0) + total
            self.counts[key] = self.counts.get(key, 0) + n

    def means(self) -> dict[str, float | None]:
        """`{key: mean of its finite values}`, keys in first-seen order; None where no value was finite."""
        return {k: (self.sums[k] / self.counts[k] if self.counts[k] else None) for k in self.sums}
