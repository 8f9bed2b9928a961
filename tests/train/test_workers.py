"""Trials of several DDP workers (issue 24): `train.resources.workers_per_trial: 2` on the local Ray,
two CPU workers (gloo) of the tiny Method 1.

Acceptance 1: the 2-worker trial trains the 1-worker recipe (same seed, same global batch): its
loss curve matches the single-process loop's within the tolerances below, measured on this
machine (the differences are float reduction order: DDP's gradient all-reduce, the global-batch
BatchNorm's sums; RMSprop's first steps, which move each weight by about 10 * lr whatever the
gradient's size, carry them on, so the test uses lr 1e-4). Acceptance 2: a worker SIGKILLed
mid-trial makes Ray Train restart the worker group, which resumes from the trial's checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_stage import REPO, smoke_config, tiny_section

pytestmark = pytest.mark.slow

# measured: loss and its terms agree to ~4e-5 relative over 6 steps, train PSNR to ~1.5e-4 dB,
# val PSNR to ~4e-3 dB (4 faces); the bounds leave room for other CPUs' kernels
LOSS_RTOL, TRAIN_PSNR_ATOL, VAL_PSNR_ATOL = 3e-4, 2e-3, 3e-2
# GAN: step 1 agrees to ~1e-6 relative; then the discriminator's terms drift most (its own RMSprop
# steps amplify the reduction-order differences): measured up to 8.5e-4 relative (loss_d) over 6 steps,
# the generator's total loss and content terms up to 5e-5
GAN_TERM_RTOL = {"loss_d": 5e-3, "loss_adv": 5e-3, "loss_vgg": 5e-3}


def ddp_section(workers: int, **loop) -> dict:
    """One Method 1 trial (seed 0, lr 1e-4) of `workers` workers, fp32, global batch 4 of the 8 train faces."""
    section = tiny_section(seeds=(0,))
    section["variants"] = {"method1": section["variants"]["method1"]}
    section["search"]["lr"] = [1.0e-4]
    section["loop"].update(precision="fp32", channels_last=False, device="cpu")
    section["smoke_test"].update({"steps": 6, "batch_size": 4, "log_every": 1, "val_every": 3, "ckpt_every": 2, **loop})
    section["resources"] = {"cpus_per_trial": 1, "gpus_per_trial": 0, "workers_per_trial": workers}
    return section


def read_curves(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def assert_matches_one_worker(trial, data: Path, curves: Path, workdir: Path, init: Path | None = None,
                              loss_rtol: dict[str, float] | None = None):
    """Train `trial` (from `init`, a GAN trial) in the single-process loop (what a 1-worker trial runs)
    and compare the multi-worker trial's `curves` with its curve (`loss_rtol`: per-term tolerances
    over LOSS_RTOL); returns the loop's result."""
    from facesr.train.checkpoint import RunIdentity
    from facesr.train.loop import train

    one = train(trial, data_root=data, workdir=workdir, init=init,
                identity=RunIdentity(params=trial.params_hash, data="d", init=str(init or ""), code="c"))
    ref, two = read_curves(one.curves), read_curves(curves)
    assert [r["step"] for r in two] == [r["step"] for r in ref]
    for a, b in zip(ref, two):
        assert set(a) - {"images_per_s", "train_s"} == set(b) - {"images_per_s", "train_s"}
        for key in (k for k in a if k.startswith("loss")):
            rtol = (loss_rtol or {}).get(key, LOSS_RTOL)
            assert math.isclose(a[key], b[key], rel_tol=rtol), (a["step"], key, a[key], b[key])
        if "train_psnr" in a:
            assert abs(a["train_psnr"] - b["train_psnr"]) <= TRAIN_PSNR_ATOL, (a, b)
            assert all(a[k] == b[k] for k in a if k.startswith("lr")), (a, b)
        for key in (k for k in a if k.startswith("val_psnr")):
            assert abs(a[key] - b[key]) <= VAL_PSNR_ATOL, (a["step"], key, a[key], b[key])
    # the curve was learnt, not flat: the test would see a worker that trained nothing
    assert two[-2]["loss"] < two[0]["loss"]
    return one


def assert_scored(model: Path, data: Path) -> None:
    """The exported file loads (weights only) and evaluate scores it."""
    from facesr.evaluate import evaluate

    scored = evaluate(data, {"method1": model}, lpips_net="alex", batch_size=2, max_images=0, device="cpu",
                      precision="fp32", channels_last=False, progress=False)
    assert math.isfinite(scored.summary["method1"]["psnr"]) and scored.summary["method1"]["psnr"] > 0


def assert_one_mlflow_run(parent_run_id: str, run_id: str, steps: int) -> None:
    """One MLflow run for the trial (rank 0's), finished, with the whole curve."""
    import mlflow

    runs = mlflow.search_runs(experiment_names=["facesr"], output_format="list",
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and runs[0].info.run_id == run_id
    history = mlflow.MlflowClient().get_metric_history(run_id, "loss")
    assert sorted({m.step for m in history}) == list(range(1, steps + 1))


@pytest.mark.long
def test_two_workers_train_the_one_worker_recipe_and_export_a_model_evaluate_scores(prepared_small, tmp_path):
    from facesr.models import load_generator
    from stages import train as stage

    config = smoke_config(ddp_section(2))
    out = tmp_path / "out"
    summary = stage.run(config, data=prepared_small, models=out / "models", metrics=out / "train.json",
                        curves=out / "curves", workdir=tmp_path / "runs", smoke_test=True)
    (trial,) = summary["trials"]
    assert trial["error"] is None and trial["step"] == 6 and trial["resumed_from"] == 0
    one = assert_matches_one_worker(config.trials[0], prepared_small, out / "curves" / "method1.csv", tmp_path / "one")
    assert [r["step"] for r in read_curves(one.curves)] == [1, 2, 3, 3, 4, 5, 6, 6]

    # two workers, one process each; rank 0 alone exported, in the usual format
    ranks = [json.loads(p.read_text()) for p in sorted((tmp_path / "runs" / trial["name"] / "workers").glob("rank*.json"))]
    assert [r["rank"] for r in ranks] == [0, 1] and len({r["pid"] for r in ranks}) == 2
    model, meta = load_generator(out / "models" / "method1.pt")
    assert meta["model"] == "method1" and meta["extra"]["step"] == 6
    assert set(model.state_dict()) == set(load_generator(one.generator)[0].state_dict())
    assert_scored(out / "models" / "method1.pt", prepared_small)
    assert_one_mlflow_run(summary["mlflow"]["parent_run_id"], trial["mlflow_run_id"], 6)


@pytest.mark.long
def test_two_gan_workers_train_the_one_worker_recipe_generator_and_discriminator(prepared_small, tmp_path):
    """train_gan with `workers_per_trial: 2`: both networks in DDP (the discriminator's BatchNorm over the
    global batch), from a 1-worker Method 1 export; the curve is the 1-worker GAN loop's, rank 0 exports."""
    from facesr.config import load_section
    from facesr.models import load_generator
    from stages import train, train_gan

    init_out = tmp_path / "init"
    train.run(smoke_config(ddp_section(1)), data=prepared_small, models=init_out / "models",
              metrics=init_out / "train.json", curves=init_out / "curves", workdir=tmp_path / "init-runs",
              smoke_test=True)
    init = init_out / "models" / "method1.pt"
    gan = load_section(REPO / "params.yaml", "train_gan")
    gan["loop"].update(val_lpips=False, discriminator_args={"num_feat": 4}, precision="fp32", channels_last=False,
                       device="cpu", lr_g=1.0e-4, lr_d=1.0e-4)
    gan["smoke_test"].update(steps=6, batch_size=4, log_every=1, val_every=3, ckpt_every=2)
    gan["resources"] = {"cpus_per_trial": 1, "gpus_per_trial": 0, "workers_per_trial": 2}
    gan["max_failures"] = 1
    config = smoke_config(gan, "train_gan")
    out = tmp_path / "out"
    summary = train_gan.run(config, data=prepared_small, init=init, models=out / "models", metrics=out / "g.json",
                            curves=out / "curves", workdir=tmp_path / "runs", smoke_test=True)
    (trial,) = summary["trials"]
    assert trial["error"] is None and trial["step"] == 6
    ranks = [json.loads(p.read_text()) for p in sorted((tmp_path / "runs" / trial["name"] / "workers").glob("rank*.json"))]
    assert [r["rank"] for r in ranks] == [0, 1] and len({r["pid"] for r in ranks}) == 2
    assert_matches_one_worker(config.trials[0], prepared_small, out / "curves" / "method2.csv", tmp_path / "one",
                              init=init, loss_rtol=GAN_TERM_RTOL)
    _, meta = load_generator(out / "models" / "method2.pt")
    assert meta["model"] == "method1" and meta["extra"]["step"] == 6
    assert_scored(out / "models" / "method2.pt", prepared_small)
    assert_one_mlflow_run(summary["mlflow"]["parent_run_id"], trial["mlflow_run_id"], 6)


def _params_file(path: Path, section: dict) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    path.write_text(yaml.safe_dump({"mlflow": params["mlflow"], "train": section}, sort_keys=False))
    return path


@pytest.mark.long  # ~55 s here: with the other multi-worker runs in test-long, make test stays near 10 min
def test_a_worker_killed_mid_trial_resumes_the_trial_from_its_checkpoint(prepared_small, tmp_path):
    """Rank 1 announces its pid at step 3 (FACESR_FAULT_MODE=pause) and waits; the test SIGKILLs it.
    The last checkpoint is step 2 (rank 0 cannot pass step 4's all-reduce without rank 1). The
    trial then finishes as the 1-worker recipe would (acceptance 1 and 2 in one Ray run)."""
    from facesr.config import load_context
    from facesr.train.config import parse_stage

    steps = 8
    section = ddp_section(2, steps=steps)
    section["loop"].update(section.pop("smoke_test"))
    section["smoke_test"] = {}
    section["max_failures"] = 1
    params = _params_file(tmp_path / "params.yaml", section)
    out, runs = tmp_path / "out", tmp_path / "runs"
    env = {**os.environ, "FACESR_FAULT_STEP": "3", "FACESR_FAULT_MODE": "pause", "FACESR_FAULT_RANK": "1"}
    cmd = [sys.executable, "-m", "stages.train", "--params", str(params), "--data", str(prepared_small),
           "--models", str(out / "models"), "--metrics", str(out / "train.json"), "--curves", str(out / "curves"),
           "--workdir", str(runs)]
    log = tmp_path / "stage.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not (markers := [p for p in runs.glob("*/.fault_fired_3") if p.read_text().strip()]):
            assert proc.poll() is None, log.read_text()[-6000:]
            assert time.monotonic() < deadline, f"rank 1 never reached step 3:\n{log.read_text()[-6000:]}"
            time.sleep(0.2)
        (marker,) = markers
        pid = int(marker.read_text())
        trial_dir = marker.parent
        assert json.loads((trial_dir / "workers" / "rank1.json").read_text())["pid"] == pid
        os.kill(pid, signal.SIGKILL)
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, log.read_text()[-6000:]

    summary = json.loads((out / "train.json").read_text())
    (trial,) = summary["trials"]
    assert trial["error"] is None and trial["step"] == steps and trial["resumed_from"] == 2, trial
    from facesr.models import load_generator

    _, meta = load_generator(out / "models" / "method1.pt")
    assert meta["extra"]["step"] == steps
    # the worker group was restarted: rank 1 is a new process
    assert json.loads((trial_dir / "workers" / "rank1.json").read_text())["pid"] != pid
    # the resumed trial still trains the one-worker recipe, and its export is scored
    config = parse_stage(section, stage="train", gan=False, smoke_test=False, context=load_context(params))
    assert_matches_one_worker(config.trials[0], prepared_small, out / "curves" / "method1.csv", tmp_path / "one")
    assert_scored(out / "models" / "method1.pt", prepared_small)
    assert_one_mlflow_run(summary["mlflow"]["parent_run_id"], trial["mlflow_run_id"], steps)
