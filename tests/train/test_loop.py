import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import gan_params, identity, loop_params

from facesr.models import load_generator
from facesr.train.checkpoint import load_checkpoint
from facesr.train.loop import train

HERE = Path(__file__).resolve().parent
DRIVER = """
import json, sys
sys.path.insert(0, {helpers!r})
from helpers import identity, loop_params
from facesr.train.loop import train
trial = loop_params(steps=6, ckpt_every=2, val_every=3)
r = train(trial, data_root=sys.argv[1], workdir=sys.argv[2], identity=identity(trial))
print(json.dumps({{"step": r.step, "resumed_from": r.resumed_from}}))
"""


@pytest.mark.slow
def test_method1_overfits_eight_faces(prepared_small, tmp_path):
    rows = []
    trial = loop_params(steps=24, batch_size=4, hflip=False, log_every=1, val_every=24, ckpt_every=24)
    train(trial, data_root=prepared_small, workdir=tmp_path, identity=identity(trial),
          on_event=lambda kind, step, p: rows.append(p) if kind == "train" else None)
    first, last3 = rows[0], rows[-3:]
    assert sum(r["train_psnr"] for r in last3) / 3 >= first["train_psnr"] + 3.0
    assert max(r["loss_parsing"] for r in last3) < first["loss_parsing"]
    curves = (tmp_path / "curves.csv").read_text().splitlines()
    assert curves[0].startswith("step,") and len(curves) == 1 + 24 + 1  # 24 train rows + 1 val row


def _run(script, data, workdir, env):
    return subprocess.run([sys.executable, "-c", script, str(data), str(workdir)], env=env, capture_output=True,
                          text=True, timeout=300)


def _same_weights(a: Path, b: Path) -> bool:
    sa = torch.load(a, weights_only=True)["state_dict"]
    sb = torch.load(b, weights_only=True)["state_dict"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
@pytest.mark.parametrize("mode, resumed_from", [("kill", 2), ("corrupt", 2)])
def test_killed_or_corrupted_run_resumes_bitwise_equal_to_uninterrupted(prepared_small, tmp_path, mode,
                                                                         resumed_from):
    """kill: SIGKILL after step 3 (last.pt = step 2). corrupt: at step 4, last.pt (step 4) is cut in
    half and the run dies; the rerun falls back to previous.pt (step 2)."""
    script = DRIVER.format(helpers=str(HERE))
    env = {**os.environ, "FACESR_NO_PROGRESS": "1"}
    ref = _run(script, prepared_small, tmp_path / "ref", env)
    assert ref.returncode == 0, ref.stderr[-2000:]

    faulty = {**env, "FACESR_FAULT_STEP": "3" if mode == "kill" else "4", "FACESR_FAULT_MODE": mode}
    first = _run(script, prepared_small, tmp_path / "run", faulty)
    assert first.returncode == (-signal.SIGKILL if mode == "kill" else 1)
    again = _run(script, prepared_small, tmp_path / "run", faulty)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout.strip().splitlines()[-1]) == {"step": 6, "resumed_from": resumed_from}
    if mode == "corrupt":
        assert "last.pt: not a readable checkpoint" in again.stderr

    assert _same_weights(tmp_path / "ref" / "generator.pt", tmp_path / "run" / "generator.pt")
    ca = load_checkpoint(tmp_path / "ref" / "last.pt")
    cb = load_checkpoint(tmp_path / "run" / "last.pt")
    assert all(torch.equal(ca["optimizer"]["state"][i]["square_avg"], cb["optimizer"]["state"][i]["square_avg"])
               for i in ca["optimizer"]["state"])
    assert [r["loss"] for r in ca["history"] if "loss" in r] == [r["loss"] for r in cb["history"] if "loss" in r]
    assert load_checkpoint(tmp_path / "run" / "previous.pt")["step"] == 4  # the one before the last is kept


def test_a_checkpoint_of_another_identity_is_never_resumed(prepared_small, tmp_path, caplog):
    trial = loop_params("srresnet", steps=2, ckpt_every=2, val_every=2)
    old = train(trial, data_root=prepared_small, workdir=tmp_path, identity=identity(trial, data="old-data"))
    assert old.step == 2
    caplog.set_level(logging.WARNING, logger="facesr.train.checkpoint")
    new = train(trial, data_root=prepared_small, workdir=tmp_path, identity=identity(trial, data="new-data"))
    assert new.resumed_from == 0 and new.step == 2
    assert "(data changed): not resumed from it" in caplog.text
    again = train(trial, data_root=prepared_small, workdir=tmp_path, identity=identity(trial, data="new-data"))
    assert again.resumed_from == 2  # the same identity does resume
    assert load_checkpoint(tmp_path / "last.pt")["identity"]["data"] == "new-data"


@pytest.mark.slow
def test_gan_generator_starts_from_the_method1_export(prepared_small, tmp_path):
    m1_trial = loop_params(steps=2, val_every=2, ckpt_every=2)
    m1 = train(m1_trial, data_root=prepared_small, workdir=tmp_path / "m1", identity=identity(m1_trial))
    init, _ = load_generator(m1.generator)
    g0_trial = gan_params(steps=0)
    at0 = train(g0_trial, data_root=prepared_small, init=m1.generator, workdir=tmp_path / "g0",
                identity=identity(g0_trial, init="m1"))
    g0, meta = load_generator(at0.generator)
    assert meta["model"] == "method1" and meta["extra"]["identity"]["init"] == "m1"
    assert "val_psnr" in at0.metrics  # an export of 0 steps is still validated
    s_init, s0 = init.state_dict(), g0.state_dict()
    assert all(torch.equal(s_init[k], s0[k]) for k in s_init)

    g1_trial = gan_params(steps=1, val_every=1, ckpt_every=1)
    at1 = train(g1_trial, data_root=prepared_small, init=m1.generator, workdir=tmp_path / "g1",
                identity=identity(g1_trial))
    s1 = load_generator(at1.generator)[0].state_dict()
    assert not all(torch.equal(s_init[k], s1[k]) for k in s_init)
    ckpt = load_checkpoint(tmp_path / "g1" / "last.pt")
    assert {"discriminator", "optimizer_d", "scheduler_d", "rng"} <= set(ckpt)
    assert {"loss_d", "loss_vgg", "loss_adv"} <= set(ckpt["history"][0])


def test_a_gan_init_that_is_not_method1_is_refused(prepared_small, tmp_path):
    from facesr.train.loop import TrainConfigError

    sr_trial = loop_params("srresnet", steps=0)
    sr = train(sr_trial, data_root=prepared_small, workdir=tmp_path / "sr", identity=identity(sr_trial))
    gan = gan_params(steps=1)
    with pytest.raises(TrainConfigError, match="starts from a method1 generator"):
        train(gan, data_root=prepared_small, init=sr.generator, workdir=tmp_path / "g", identity=identity(gan))


# ------------------------------------------------------------------------------------- precision

def test_explicit_bf16_on_cpu_runs_the_step_in_bf16_and_keeps_weights_and_state_fp32(prepared_small):
    import warnings

    from facesr.data import FaceSRDataset
    from facesr.train.loop import ContentTask, loop_precision

    trial = loop_params(precision="bf16", channels_last=True)
    device = torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the slow-bf16 warning of a CPU without AVX512_BF16
        precision = loop_precision(trial.loop, device)
    task = ContentTask(trial, trial.loop, device, None)
    precision.prepare(task.generator)
    seen = []
    conv = next(m for m in task.generator.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    data = FaceSRDataset(prepared_small, "train", hflip=False)
    batch = {k: torch.stack([torch.as_tensor(data[i][k]) for i in range(2)]) for k in ("lr", "hr", "parsing")}
    batch = {k: precision.inputs(v) for k, v in batch.items()}
    losses, sr = task.step(1, batch, task.generator, precision.autocast())
    assert seen == [torch.bfloat16] and sr.dtype == torch.float32
    assert {"loss", "loss_coarse", "loss_parsing", "loss_fine"} <= set(losses)
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in task.generator.parameters())
    state = task.optimizer.state_dict()["state"]
    assert state and all(s["square_avg"].dtype == torch.float32 for s in state.values())


@pytest.mark.slow
def test_a_bf16_run_resumes_bitwise_equal_to_an_uninterrupted_one(prepared_small, tmp_path, monkeypatch):
    from facesr.train.loop import InjectedFault

    monkeypatch.setenv("FACESR_NO_PROGRESS", "1")
    trial = loop_params(steps=4, ckpt_every=2, val_every=4, precision="bf16", channels_last=True)
    with pytest.warns(UserWarning, match="bf16 asked for") if not _fast_bf16() else _nothing():
        ref = train(trial, data_root=prepared_small, workdir=tmp_path / "ref", identity=identity(trial))
    assert ref.precision["precision"] == "bf16" and ref.precision["channels_last"] is True
    monkeypatch.setenv("FACESR_FAULT_STEP", "3")
    with pytest.raises(InjectedFault):
        train(trial, data_root=prepared_small, workdir=tmp_path / "run", identity=identity(trial))
    again = train(trial, data_root=prepared_small, workdir=tmp_path / "run", identity=identity(trial))
    assert (again.resumed_from, again.step) == (2, 4)
    assert _same_weights(tmp_path / "ref" / "generator.pt", tmp_path / "run" / "generator.pt")
    ca, cb = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(tmp_path / "run" / "last.pt")
    assert all(v.dtype == torch.float32 for v in ca["model"].values() if v.is_floating_point())
    assert all(torch.equal(ca["optimizer"]["state"][i]["square_avg"], cb["optimizer"]["state"][i]["square_avg"])
               and ca["optimizer"]["state"][i]["square_avg"].dtype == torch.float32 for i in ca["optimizer"]["state"])
    assert [r["loss"] for r in ca["history"] if "loss" in r] == [r["loss"] for r in cb["history"] if "loss" in r]


def _fast_bf16() -> bool:
    from facesr.device import fast_bf16

    return fast_bf16("cpu")


def _nothing():
    import contextlib

    return contextlib.nullcontext()
