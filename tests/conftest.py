"""Shared fixtures: isolate every service's state in tmp paths, small synthetic prepared datasets, and the
real mini faces of ../shared (only for the tests marked `mini`: a test that needs them fails where they
are absent instead of skipping, so that a green run means they ran)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from demo_params import demo_download, demo_downscale, demo_merge
from repo_copy import BIN, STAGES, copy_repo, copy_reproduced, free_port, ran_stages, stop

REPO = Path(__file__).resolve().parents[1]
MINI = Path(os.environ.get("FACESR_MINI_DIR", REPO.parent / "shared" / "data" / "celebamask-hq-mini"))
LPIPS_REFERENCE = Path(os.environ.get("FACESR_LPIPS_REFERENCE_DIR",
                                      REPO.parent / "shared" / "data" / "lpips-reference"))
PARTS = ["skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip", "l_ear", "r_ear"]


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


# The fixtures that read ../shared; a test that uses one (directly or through another fixture) carries
# @pytest.mark.mini, so `-m "not mini"` deselects exactly the tests that need the real data.
SHARED_FIXTURES = ("mini_dir", "lpips_reference_dir")


def pytest_runtest_setup(item):
    """Fail a test that reads ../shared without the `mini` marker: `-m "not mini"` could not leave it out,
    so a clone without the data would have no honest way to run the rest."""
    used = [f for f in SHARED_FIXTURES if f in getattr(item, "fixturenames", ())]
    if used and item.get_closest_marker("mini") is None:
        pytest.fail(f"{item.nodeid} uses {', '.join(used)} (../shared) but is not marked "
                    f"@pytest.mark.mini (tests/conftest.py)", pytrace=False)


def _missing_shared(what: str, path: Path, env: str) -> None:
    pytest.fail(f"{what} not present at {path} (set {env} to another copy, or deselect the tests that need it "
                f"with -m \"not mini\")", pytrace=False)


@pytest.fixture(scope="session")
def mini_dir() -> Path:
    """The 750 real CelebAMask-HQ faces in ../shared (or $FACESR_MINI_DIR)."""
    if not (MINI / "CelebA-HQ-img").is_dir():
        _missing_shared("real mini faces (CelebA-HQ-img/)", MINI, "FACESR_MINI_DIR")
    return MINI


@pytest.fixture(scope="session")
def lpips_reference_dir() -> Path:
    """The LPIPS reference pair and its published distances in ../shared (or $FACESR_LPIPS_REFERENCE_DIR)."""
    if not (LPIPS_REFERENCE / "published_distances.json").is_file():
        _missing_shared("LPIPS reference pair (published_distances.json)", LPIPS_REFERENCE,
                        "FACESR_LPIPS_REFERENCE_DIR")
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
    download(base / "raw", **demo_download(source="synthetic", synthetic_count=24, seed=0, workers=2))
    merge_masks(base / "raw", base / "merged", parts=PARTS, **demo_merge(workers=2))
    settings = load_section(REPO / "params.yaml", "downscale", profile="demo")
    downscale(base / "raw", base / "merged", base / "prepared", **settings)
    return base / "prepared"


@pytest.fixture(scope="session")
def prepared_small(tmp_path_factory) -> Path:
    """8 train / 4 val / 4 test synthetic faces (facesr-prepared/1): what training and evaluation tests
    run on, made by the real data functions with the demo's settings but the split."""
    from facesr.data.download import download
    from facesr.data.downscale import downscale
    from facesr.data.merge import merge_masks

    base = tmp_path_factory.mktemp("prepared_small")
    download(base / "raw", **demo_download(source="synthetic", synthetic_count=16, seed=0, workers=2))
    merge_masks(base / "raw", base / "merged", parts=PARTS, **demo_merge(workers=2))
    downscale(base / "raw", base / "merged", base / "prepared",
              **demo_downscale(split="counts", split_counts={"train": 8, "val": 4, "test": 4}, workers=2))
    return base / "prepared"


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=lambda m: f"umask-{m:03o}")
def umask(request):
    """The process umask set to each of three values (file modes must follow it)."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


# ------------------------------------------------------------------------ the tiny repro, once per session


@pytest.fixture(scope="session")
def e2e_env(tmp_path_factory) -> dict:
    """The environment of every end-to-end subprocess (dvc, flows): the venv first on PATH, one MLflow DB."""
    base = tmp_path_factory.mktemp("e2e-env")
    e = dict(os.environ)
    e.update({
        "PATH": f"{BIN}{os.pathsep}{e.get('PATH', '')}",
        "PREFECT_HOME": str(base / "prefect"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}",
        "FACESR_NO_PROGRESS": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
    })
    return e


@pytest.fixture(scope="session")
def prefect_server(e2e_env, tmp_path_factory) -> str:
    """`prefect server start` on a free port of 127.0.0.1 (its API URL), stopped at the end of the session."""
    import httpx

    port = free_port()
    log = open(tmp_path_factory.mktemp("prefect-server") / "server.log", "w")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=e2e_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{api}/health", timeout=2).json() is True:
                break
        except (httpx.HTTPError, ValueError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"Prefect server did not come up on {api} (see {log.name})")
        time.sleep(1)
    yield api
    stop(proc)
    log.close()


@pytest.fixture(scope="session")
def tiny_repro(e2e_env, prefect_server, tmp_path_factory) -> Path:
    """The tiny profile reproduced once per session as one DVC experiment (`dvc exp run -S profile=tiny`)
    through the pipeline flow, every stage on `prefect_server`, in a copy of the repo. Read it only: a
    test that changes anything takes `tiny_repro_copy`."""
    repo = copy_repo(tmp_path_factory.mktemp("tiny-repro"))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "flows.pipeline", "run", "--profile", "tiny", "--repo", str(repo)],
                          cwd=repo, env=e2e_env | {"PREFECT_API_URL": prefect_server}, capture_output=True,
                          text=True, timeout=900)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, f"pipeline failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    assert ran_stages(proc.stdout) == STAGES
    print(f"tiny profile, first repro through the pipeline flow: {elapsed:.0f} s")
    return repo


@pytest.fixture
def tiny_repro_copy(tiny_repro, tmp_path) -> Path:
    """This test's own copy of the reproduced tiny tree, which `dvc status` finds up to date."""
    return copy_reproduced(tiny_repro, tmp_path / "repo")
