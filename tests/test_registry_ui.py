"""The registry in the MLflow UI (issue 18, acceptance 3): a real `mlflow server` on 127.0.0.1 over a
store the project filled the way its stages do, opened in headless Chromium as the report test does.

The UI is a JavaScript app, so the checks read the DOM Chromium rendered (`--dump-dom`): the
version page shows its aliases and its test metrics, the runs table the prepared data in its
Datasets column, and the experiment is a model-training one. A screenshot of the version page is
kept with FACESR_KEEP_SCREENSHOT=<folder>.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from facesr.provenance import tree_digest
from tests.test_registry import EXPERIMENT, NAME, evaluate_scores, make_prepared, train_version

pytestmark = [pytest.mark.slow, pytest.mark.long]  # ~1.5-3 min: an MLflow server start (18-50 s here) and five Chromium page loads

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    pytest.fail("no Chromium found (looked for " + ", ".join(CHROMIUM_NAMES) + "): install it with "
                "`apt-get install -y chromium` (`make test` does so when run as root)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browse(url: str, tmp: Path, *, screenshot: Path | None = None) -> str:
    """The page's text once its scripts ran (or, with `screenshot`, a PNG of it and "")."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", f"--user-data-dir={tmp / 'chromium-profile'}", "--window-size=1400,1300",
           # virtual time runs the app's timers and waits for its requests to the server
           "--virtual-time-budget=15000"]
    cmd += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    proc = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=180)
    if screenshot:
        assert screenshot.is_file(), f"Chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
        return ""
    assert proc.returncode == 0 and proc.stdout, f"Chromium failed on {url}: {proc.stderr[-2000:]}"
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", proc.stdout, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


@pytest.fixture()
def server(tmp_path, monkeypatch):
    """A store with two trained versions (one evaluated), then `mlflow server` on a free loopback port."""
    import mlflow

    from facesr import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # a DVC project: data is named as dvc.yaml does
    data = make_prepared(tmp_path / "data" / "prepared", {"train": 3, "val": 1, "test": 2})
    tracking.set_experiment(uri, EXPERIMENT)
    store = {"uri": uri, "data": data, "digest": tree_digest(data), "root": tmp_path, "tmp": tmp_path,
             "name": NAME, "seed0": 0}
    champion, latest = train_version(store, 0), train_version(store, 1)
    evaluate_scores(store, {"method1": champion["path"]}, {"method1": 25.0})
    client = mlflow.MlflowClient(uri)
    # the control: an experiment made without facesr.tracking (no kind tag), with a run
    plain = client.create_experiment("plain", artifact_location=(tmp_path / "plain").as_uri())
    client.set_terminated(client.create_run(plain).info.run_id)

    port = free_port()
    # loopback only, for this test's lifetime; the UI's requests carry no login, so none is asked
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", uri,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "wb"), start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server not up after 150 s"
            time.sleep(1)
        yield {"base": base, "store": store, "champion": champion, "latest": latest, "tmp": tmp_path,
               "experiment_id": client.get_experiment_by_name(EXPERIMENT).experiment_id, "plain_id": plain}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_the_mlflow_ui_shows_aliases_version_metrics_and_the_dataset(server):
    base, tmp = server["base"], server["tmp"]
    version = server["champion"]["version"]
    page = browse(f"{base}/#/models/{NAME}/versions/{version}", tmp)
    assert f"Version {version}" in page, page[:2000]
    assert re.search(r"Aliases : @ ?champion", page), page[:2000]
    assert "Test scores on 2 faces" in page and "PSNR 25.0000" in page, page[:2000]
    for key, value in (("test.psnr", "25.0"), ("test.psnr_y", "26.0"), ("test.ssim", "0.5"), ("test.lpips", "0.3"),
                       ("test.data_sha256", server["store"]["digest"]), ("test.n_images", "2"),
                       ("run_fingerprint", server["champion"]["identity"].fingerprint)):
        assert f"{key} {value}" in page, (key, page[:3000])

    models = browse(f"{base}/#/models/{NAME}", tmp)
    assert "champion" in models and "latest-demo" in models, models[:2000]

    # The runs table (what the experiment opens on in the model-training view): the Datasets column
    runs = browse(f"{base}/#/experiments/{server['experiment_id']}?workflowType=machine_learning", tmp)
    assert "Runs - Experiment" in runs and "Dataset" in runs, runs[:2000]
    assert f"data/prepared ({server['store']['digest'][:16]})" in runs, runs[:2000]

    # The experiment kind tag is what gives an experiment its "Training runs" page in the default
    # (GenAI) view; the control experiment, made without it, has none.
    tagged = browse(f"{base}/#/experiments/{server['experiment_id']}", tmp)
    plain = browse(f"{base}/#/experiments/{server['plain_id']}", tmp)
    assert "Training runs" in tagged and "Training runs" not in plain, (tagged[:1500], plain[:1500])

    shot = tmp / "version.png"
    browse(f"{base}/#/models/{NAME}/versions/{version}", tmp, screenshot=shot)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1300, 1400)
    # a rendered page: dark text on a light background, not a blank or an error screen
    assert (pixels.mean(axis=2) < 100).mean() > 0.003 and (pixels.mean(axis=2) > 200).mean() > 0.5
    if keep := os.environ.get("FACESR_KEEP_SCREENSHOT"):
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "mlflow-model-version.png")
