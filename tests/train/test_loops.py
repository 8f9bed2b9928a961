import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import gan_params, loop_params

from facesr.models import load_generator
from facesr.train.checkpoint import load_checkpoint
from facesr.train.loops import train_content, train_gan

HERE = Path(__file__).resolve().parent
DRIVER = """
import json, sys
sys.path.insert(0, {helpers!r})
from helpers import loop_params
from facesr.train.loops import train_content
r = train_content(loop_params(steps=6, ckpt_every=2, val_every=3), data_root=sys.argv[1], workdir=sys.argv[2])
print(json.dumps({{"step": r["step"], "resumed_from": r["resumed_from"]}}))
"""


@pytest.mark.slow
def test_method1_overfits_eight_faces(prepared_small, tmp_path):
    rows = []
    params = loop_params(steps=24, batch_size=4, hflip=False, log_every=1, val_every=24, ckpt_every=24)
    train_content(params, data_root=prepared_small, workdir=tmp_path,
                  on_event=lambda kind, step, p: rows.append(p) if kind == "train" else None)
    first, last3 = rows[0], rows[-3:]
    assert sum(r["train_psnr"] for r in last3) / 3 >= first["train_psnr"] + 3.0
    assert max(r["loss_parsing"] for r in last3) < first["loss_parsing"]
    curves = (tmp_path / "curves.csv").read_text().splitlines()
    assert curves[0].startswith("step,") and len(curves) == 1 + 24 + 1  # 24 train rows + 1 val row


def _run(script, data, workdir, env):
    return subprocess.run([sys.executable, "-c", script, str(data), str(workdir)], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_kill_9_after_first_checkpoint_then_rerun_equals_uninterrupted(prepared_small, tmp_path):
    script = DRIVER.format(helpers=str(HERE))
    env = {**os.environ, "FACESR_NO_PROGRESS": "1"}
    ref = _run(script, prepared_small, tmp_path / "ref", env)
    assert ref.returncode == 0, ref.stderr[-2000:]

    killed_env = {**env, "FACESR_FAULT_STEP": "3", "FACESR_FAULT_MODE": "kill"}
    killed = _run(script, prepared_small, tmp_path / "run", killed_env)
    assert killed.returncode == -signal.SIGKILL
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2
    again = _run(script, prepared_small, tmp_path / "run", killed_env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout.strip().splitlines()[-1]) == {"step": 6, "resumed_from": 2}

    a = torch.load(tmp_path / "ref" / "generator.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "run" / "generator.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ca = load_checkpoint(tmp_path / "ref" / "last.pt")
    cb = load_checkpoint(tmp_path / "run" / "last.pt")
    assert all(torch.equal(ca["optimizer"]["state"][i]["square_avg"], cb["optimizer"]["state"][i]["square_avg"])
               for i in ca["optimizer"]["state"])
    assert [r["loss"] for r in ca["history"] if "loss" in r] == [r["loss"] for r in cb["history"] if "loss" in r]


@pytest.mark.slow
def test_gan_generator_starts_from_the_method1_export(prepared_small, tmp_path):
    m1 = train_content(loop_params(steps=2, val_every=2, ckpt_every=2), data_root=prepared_small,
                       workdir=tmp_path / "m1")
    init, _ = load_generator(m1["generator"])
    at0 = train_gan(gan_params(steps=0), data_root=prepared_small, init=m1["generator"], workdir=tmp_path / "g0")
    g0, meta = load_generator(at0["generator"])
    assert meta["model"] == "method1"
    s_init, s0 = init.state_dict(), g0.state_dict()
    assert all(torch.equal(s_init[k], s0[k]) for k in s_init)

    at1 = train_gan(gan_params(steps=1, val_every=1, ckpt_every=1), data_root=prepared_small,
                    init=m1["generator"], workdir=tmp_path / "g1")
    s1 = load_generator(at1["generator"])[0].state_dict()
    assert not all(torch.equal(s_init[k], s1[k]) for k in s_init)
    ckpt = load_checkpoint(tmp_path / "g1" / "last.pt")
    assert {"discriminator", "optimizer_d", "scheduler_d", "rng"} <= set(ckpt)
    assert {"loss_d", "loss_vgg", "loss_adv"} <= set(ckpt["history"][0])
