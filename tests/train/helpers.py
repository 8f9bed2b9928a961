"""Tiny trials shared by the training tests (the keys of params.yaml train.loop / train_gan.loop)."""

from __future__ import annotations

from typing import Any

from facesr.config import parse
from facesr.train.checkpoint import RunIdentity
from facesr.train.config import ContentLoop, GanLoop, Trial

PARTS = ["skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip", "l_ear", "r_ear"]

TINY = {
    "srresnet": {"num_feat": 8, "num_block": 1},
    "method1": {"num_feat": 8, "num_block": 1, "reduction": 4, "prior_feat": 8, "prior_res_blocks": 1,
                "num_hourglass": 1, "hourglass_depth": 2},
}
LOOP = {
    "seed": 0,
    "rmsprop": {"alpha": 0.99, "eps": 1.0e-8, "momentum": 0.0, "weight_decay": 0.0},
    "lr_schedule": {"name": "none", "milestones": [], "gamma": 1.0, "eta_min": 0.0},
    "batch_size": 2, "steps": 6,
    "loss_weights": {"w_coarse": 1.0, "w_parsing": 1.0, "w_fine": 1.0},
    "hflip": True, "log_every": 1, "val_every": 3, "ckpt_every": 2,
    "val_faces": 2, "sample_faces": 2, "val_lpips": False,
    "device": "cpu", "precision": "auto", "channels_last": "auto", "compile": False, "num_workers": 0,
}


def loop_params(model: str = "method1", **over: Any) -> Trial:
    loop = parse(ContentLoop, {**LOOP, "lr": 1.0e-3, **over}, "test loop")
    return Trial(model, model, dict(TINY[model]), loop)


def gan_params(**over: Any) -> Trial:
    loop = parse(GanLoop, {**LOOP, "lr_g": 1.0e-4, "lr_d": 1.0e-4, "alpha": 1.0, "beta": 6.0e-3, "gamma": 1.0e-3,
                           "perceptual_net": "vgg16", "discriminator_args": {"num_feat": 4}, **over}, "test gan loop")
    return Trial("method2", None, None, loop)


def identity(trial: Trial, data: str = "data", init: str = "", code: str = "code") -> RunIdentity:
    return RunIdentity(params=trial.params_hash, data=data, init=init, code=code)
