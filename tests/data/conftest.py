"""Small synthetic raw folders the data tests can damage freely."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

PARTS = ["skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip", "l_ear", "r_ear"]


@pytest.fixture(scope="session")
def synthetic_raw_master(tmp_path_factory) -> Path:
    from facesr.data.synthetic import generate

    base = tmp_path_factory.mktemp("synthetic_raw")
    generate(base, 6, seed=3)
    return base


@pytest.fixture
def raw(synthetic_raw_master, tmp_path) -> Path:
    """A fresh copy of 6 synthetic faces: `raw/CelebAMask-HQ/...`."""
    dst = tmp_path / "raw"
    shutil.copytree(synthetic_raw_master, dst)
    return dst
