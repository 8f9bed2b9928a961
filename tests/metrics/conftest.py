"""Fixtures of tests/metrics: bicubic x8 of real faces."""

from __future__ import annotations

import pytest
from metrics_helpers import bicubic_pairs


@pytest.fixture(scope="session")
def bicubic_faces(mini_dir):
    """(sr uint8 (N,128,128,3), hr uint8 (N,128,128,3)) for 32 real faces."""
    return bicubic_pairs(mini_dir, 32)
