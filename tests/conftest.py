"""Shared fixtures: isolate every service's state in tmp paths, and find the real mini faces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from demo_params import demo_download, demo_merge

REPO = Path(__file__).resolve().parents[1]
MINI = Path(os.environ.get("FACESR_MINI_DIR", REPO.parent / "shared" / "data" / "celebamask-hq-mini"))
LPIPS_REFERENCE = REPO.parent / "shared" / "data" / "lpips-reference"


@pytest.fixture(autouse=True, scope="session")
def _isolated_services(tmp_path_factory):
    """Prefect, MLflow, Ray and DVC write under $HOME by default; keep test runs out of it.

    FACESR_HOME (the pretrained-weights cache) is left alone on purpose: the weights are real,
    large, and fetched once per machine by `facesr weights fetch`.
    """
    base = tmp_path_factory.mktemp("services")
    env = {
        "PREFECT_HOME": str(base / "prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": str(Path("/tmp") / f"ray-{os.getpid()}"),
        "DVC_NO_ANALYTICS": "1",
        "FACESR_NO_PROGRESS": "1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def mini_dir() -> Path:
    """The 750 real CelebAMask-HQ faces in ../shared; tests that need them skip where absent."""
    if not (MINI / "CelebA-HQ-img").is_dir():
        pytest.skip(f"real mini faces not present at {MINI}")
    return MINI


@pytest.fixture(scope="session")
def lpips_reference_dir() -> Path:
    if not (LPIPS_REFERENCE / "published_distances.json").is_file():
        pytest.skip(f"LPIPS reference pair not present at {LPIPS_REFERENCE}")
    return LPIPS_REFERENCE


@pytest.fixture(scope="session")
def prepared_synthetic(tmp_path_factory) -> Path:
    """A small prepared dataset (facesr-prepared/1): 24 synthetic faces through download, merge_masks
    and downscale with the params.yaml defaults (thesis split: 22 train / 1 val / 1 test)."""
    from facesr.config import load_section
    from facesr.data.download import download
    from facesr.data.downscale import downscale
    from facesr.data.merge import merge_masks

    base = tmp_path_factory.mktemp("prepared_synthetic")
    parts = ["skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip", "l_ear", "r_ear"]
    download(base / "raw", **demo_download(source="synthetic", synthetic_count=24, seed=0, workers=2))
    merge_masks(base / "raw", base / "merged", parts=parts, **demo_merge(workers=2))
    settings = load_section(REPO / "params.yaml", "downscale", profile="demo")
    downscale(base / "raw", base / "merged", base / "prepared", **settings)
    return base / "prepared"


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=lambda m: f"umask-{m:03o}")
def umask(request):
    """The process umask set to each of three values (file modes must follow it)."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)
