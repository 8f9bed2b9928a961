"""End to end: a real `dvc repro` of the tiny profile in a copy of the repo, reported to a real
Prefect server on 127.0.0.1 (tests/conftest.py's session fixtures `tiny_repro` and `prefect_server`);
then the no-op repro, a train_gan param change, changed data, and the scheduled deployment triggered
by hand, each that changes the tree in its own copy of it. Nothing is mocked: these are the stages
`make demo` runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from repo_copy import BIN, STAGES, ran_stages, stop

from facesr.metrics.spec import RESERVED

pytestmark = pytest.mark.slow  # ~4-6 min on 2 cores: the whole pipeline, a Prefect server, a deployment

HEADLINE = ("psnr", "ssim", "lpips", "psnr_y", "ssim_y")


def flow_runs(api: str) -> list[tuple[str, str]]:
    """(flow name, state type) of every flow run on the server."""
    import httpx

    flows = {f["id"]: f["name"] for f in httpx.post(f"{api}/flows/filter", json={}, timeout=30).json()}
    runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 200}, timeout=30).json()
    return [(flows.get(r["flow_id"], "?"), r["state_type"]) for r in runs]


@pytest.fixture
def repo(tiny_repro) -> Path:
    return tiny_repro


@pytest.fixture
def env(e2e_env) -> dict:
    return e2e_env


@pytest.fixture
def server(prefect_server) -> str:
    return prefect_server


def test_repro_produces_every_model_and_metric(repo):
    scores = json.loads((repo / "metrics" / "eval.json").read_text())
    assert set(scores) - set(RESERVED) == {"bicubic", "srresnet", "method1", "method2"}
    assert set(scores["comparisons"]) >= {"method1-srresnet", "method2-method1"}
    for model, s in ((m, s) for m, s in scores.items() if m not in RESERVED):
        for key in HEADLINE:
            assert isinstance(s[key], float), (model, key)
    assert (repo / "reports" / "index.html").is_file() and (repo / "reports" / "img" / "grid.png").is_file()
    assert (repo / "models" / "gan" / "method2.pt").is_file()


def test_upscale_with_the_pipeline_model(repo, tmp_path):
    """`facesr upscale` on 5 faces (the pipeline's own downloaded ones, as photos of another size) with the
    Method 1 the pipeline trained (issue 7, acceptance 1)."""
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        with Image.open(repo / "data" / "raw" / "CelebAMask-HQ" / "CelebA-HQ-img" / f"{i}.jpg") as im:
            im.convert("RGB").resize((48, 48), Image.BICUBIC).save(src / f"face{i}.jpg", quality=95)
    out = tmp_path / "out"
    proc = subprocess.run([str(BIN / "facesr"), "upscale", str(src), "-o", str(out), "--model",
                           str(repo / "models" / "train" / "method1.pt"), "--compare", "--save-parsing",
                           "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for i in range(5):
        for sub, width in (("", 128), ("compare", None), ("parsing", 128)):
            with Image.open(out / sub / f"face{i}.png") as im:
                im.load()
                assert im.mode == "RGB" and im.size[1] == 128 and (width is None or im.size[0] == width), (sub, im.size)


def test_upscale_runtime_onnx_of_the_pipeline_model_on_its_test_faces_writes_what_torch_writes(repo, tmp_path,
                                                                                              capsys):
    """Issue 25, acceptance 2: the pipeline's Method 1 exported (`facesr export`) and run by ONNX Runtime
    on the pipeline's own test LR faces (data/prepared/test/lr.npy) writes every image within 1/255 of
    the torch path at fp32."""
    import numpy as np
    from PIL import Image

    from facesr.cli import main

    lr = np.load(repo / "data" / "prepared" / "test" / "lr.npy")
    src = tmp_path / "lr"
    src.mkdir()
    for i, face in enumerate(lr):
        Image.fromarray(face).save(src / f"{i}.png")
    model = repo / "models" / "train" / "method1.pt"
    assert main(["export", str(model), "-o", str(tmp_path / "method1.onnx")]) == 0
    for runtime, source in (("torch", model), ("onnx", tmp_path / "method1.onnx")):
        assert main(["upscale", str(src), "-o", str(tmp_path / runtime), "--model", str(source), "--runtime", runtime,
                     "--precision", "fp32", "--device", "cpu"]) == 0
        assert f"({runtime}, fp32)" in capsys.readouterr().err
    for i in range(len(lr)):
        with Image.open(tmp_path / "torch" / f"{i}.png") as a, Image.open(tmp_path / "onnx" / f"{i}.png") as b:
            assert a.size == b.size == (128, 128)
            assert np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max() <= 1, i


def test_every_stage_is_a_completed_flow_run(repo, server):
    runs = flow_runs(server)
    for name in [*STAGES, "pipeline"]:
        assert (name, "COMPLETED") in runs, f"no completed '{name}' flow run on the server: {runs}"


def test_second_repro_does_nothing_fast(repo, env):
    t0 = time.monotonic()
    proc = subprocess.run([str(BIN / "dvc"), "repro"], cwd=repo, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert ran_stages(proc.stdout) == []
    assert elapsed < 10, f"no-op repro took {elapsed:.1f} s"


def test_the_experiment_is_recorded_with_its_profile(repo, env):
    proc = subprocess.run([str(BIN / "dvc"), "exp", "show", "--json"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '"profile": "tiny"' in proc.stdout.replace("'", '"')
    assert "profile: tiny" in (repo / "params.yaml").read_text()


@pytest.mark.parametrize("where", ["params.yaml", "profiles/tiny.yaml"])
def test_train_gan_param_dirties_only_train_gan_and_its_downstream(tiny_repro_copy, env, where):
    """A train_gan key changed in params.yaml, then in the selected profile (tracked by dvc.yaml too).
    DVC 3's `repro --dry` lists only the stages whose own deps changed (it runs nothing, so no output
    changes downstream): train_gan alone; with --force-downstream, the stages after it in the graph."""
    repo = tiny_repro_copy
    set_gan_lr(repo / where, 5.0e-5 if where == "params.yaml" else 7.0e-5)
    dry = subprocess.run([str(BIN / "dvc"), "repro", "--dry"], cwd=repo, env=env, capture_output=True, text=True,
                         timeout=300)
    assert dry.returncode == 0, dry.stdout[-4000:] + dry.stderr[-4000:]
    assert ran_stages(dry.stdout) == ["train_gan"]
    down = subprocess.run([str(BIN / "dvc"), "repro", "--dry", "--force-downstream"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stdout[-4000:] + down.stderr[-4000:]
    assert ran_stages(down.stdout) == ["train_gan", "evaluate", "report"]


@pytest.mark.long  # ~2.5-3.5 min: train_gan, evaluate and report rerun
def test_train_gan_param_reruns_only_its_downstream(tiny_repro_copy, env):
    """The real rerun behind the dry run above: evaluate and report rerun because train_gan's export changed."""
    repo = tiny_repro_copy
    set_gan_lr(repo / "profiles" / "tiny.yaml", 7.0e-5)
    proc = subprocess.run([str(BIN / "dvc"), "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert ran_stages(proc.stdout) == ["train_gan", "evaluate", "report"]


def set_gan_lr(path: Path, lr_g: float) -> None:
    data = yaml.safe_load(path.read_text())
    data["train_gan"].setdefault("loop", {})["lr_g"] = lr_g
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _weights(path: Path) -> dict:
    import torch

    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.long  # ~4 min: the data stages, train and train_gan all rerun
def test_changed_data_retrains_from_step_0_and_never_reuses_a_checkpoint(tiny_repro_copy, env):
    """Issue 14: the prepared data changes -> train and train_gan run every trial from step 0 (their
    run identity names the new data and, for the GAN, the new Method 1), the exports differ."""
    import torch

    repo = tiny_repro_copy

    before = {name: json.loads((repo / "metrics" / f"{name}.json").read_text()) for name in ("train", "train_gan")}
    old = {p: _weights(repo / "models" / p) for p in ("train/method1.pt", "train/srresnet.pt", "gan/method2.pt")}
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["downscale"]["kernel"] = "bicubic"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run([str(BIN / "dvc"), "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert ran_stages(proc.stdout) == ["downscale", "train", "train_gan", "evaluate", "report"]

    after = {name: json.loads((repo / "metrics" / f"{name}.json").read_text()) for name in ("train", "train_gan")}
    assert after["train"]["identity"]["data"] != before["train"]["identity"]["data"]
    assert after["train_gan"]["identity"]["init"] != before["train_gan"]["identity"]["init"]
    for name in ("train", "train_gan"):
        assert after[name]["trials"] and all(t["resumed_from"] == 0 and t["step"] > 0 for t in after[name]["trials"])
        assert not {t["fingerprint"] for t in after[name]["trials"]} & {t["fingerprint"] for t in before[name]["trials"]}
    for path, state in old.items():
        new = _weights(repo / "models" / path)
        assert not all(torch.equal(state[k], new[k]) for k in state), f"{path}: the same weights after new data"
    trial_dirs = {p.name for p in (repo / "runs" / "train").iterdir() if p.name != "ray"}
    assert {t["name"] for t in before["train"]["trials"]} <= trial_dirs  # the old runs are left as they were

    again = subprocess.run([str(BIN / "dvc"), "repro"], cwd=repo, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and ran_stages(again.stdout) == []


def test_scheduled_deployment_runs_on_trigger(repo, env, server, tmp_path):
    import httpx

    e = env | {"PREFECT_API_URL": server}
    log = open(tmp_path / "serve.log", "w")
    serve = subprocess.Popen([sys.executable, "-m", "flows.pipeline", "serve", "--cron", "0 3 * * *",
                              "--repo", str(repo)], cwd=repo, env=e, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while httpx.get(f"{server}/deployments/name/pipeline/nightly", timeout=5).status_code != 200:
            assert serve.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(1)
        dep = httpx.get(f"{server}/deployments/name/pipeline/nightly", timeout=5).json()
        assert any(s["schedule"].get("cron") == "0 3 * * *" for s in dep["schedules"])
        out = subprocess.run([str(BIN / "prefect"), "deployment", "run", "pipeline/nightly"], env=e,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        deadline = time.monotonic() + 180
        while True:
            runs = httpx.post(f"{server}/flow_runs/filter", timeout=10,
                              json={"deployments": {"id": {"any_": [dep["id"]]}}}).json()
            states = [r["state_type"] for r in runs]
            if "COMPLETED" in states:
                break
            assert not {"FAILED", "CRASHED"} & set(states), (tmp_path / "serve.log").read_text()[-4000:]
            assert time.monotonic() < deadline, f"deployment run not completed: {states}"
            time.sleep(2)
    finally:
        # Stop serve before the server: a serve whose server is gone hangs (STACK.md).
        stop(serve)
        log.close()
