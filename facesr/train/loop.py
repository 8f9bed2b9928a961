"""The training loop: one skeleton, a content step (SRResNet, Method 1) and a GAN step (Method 2).

`train` reads top to bottom: set up (seed, task = model + losses + optimizers, resume, data), then
per step: batch -> task step -> log -> validate every ``val_every`` -> checkpoint every
``ckpt_every`` (and at the end) -> export. A run killed at any point and started again with the
same workdir and identity ends with the same weights as an uninterrupted one (on CPU, fixed seed):
batches are a function of (seed, step) and every RNG, optimizer and scheduler state is in the
checkpoint. Ray and MLflow stay outside: they listen through `on_event`.

As one worker of a multi-worker trial (`dist`, facesr.train.distributed), the loop trains its
share of each global batch in DDP; rank 0 alone validates, writes checkpoints, emits the events
and exports, and every rank emits "checkpoint" at the same steps (the others with no path).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facesr.data import FaceSRDataset
from facesr.data.packed import read_manifest
from facesr.data.util import progress
from facesr.device import Precision, resolve_device, resolve_precision
from facesr.fileio import atomic_write_text
from facesr.losses import ContentLoss, PerceptualLoss, discriminator_loss, generator_adversarial_loss
from facesr.metrics import psnr
from facesr.models import SROutput, build_model, load_generator, save_generator
from facesr.train.checkpoint import RunIdentity, resume_from, rng_state, save_checkpoint, set_rng_state
from facesr.train.config import ContentLoop, GanLoop, RMSProp, Schedule, Trial
from facesr.train.data import StepBatchSampler, flip_batch, flip_permutation
from facesr.train.distributed import Distributed
from facesr.train.validate import Validator, last_val, write_curves

# Called as on_event(kind, step, payload): kind "train"/"val" with a dict of floats, "sample"
# with a PNG path, "checkpoint" with the checkpoint path (None on the ranks > 0 of a multi-worker
# trial, which write none), "resumed" with the history so far. Ray reporting and MLflow logging hook here.
EventHook = Callable[[str, int, Any], None]
FAULT_STEP_ENV, FAULT_MODE_ENV, FAULT_RANK_ENV = "FACESR_FAULT_STEP", "FACESR_FAULT_MODE", "FACESR_FAULT_RANK"
log = logging.getLogger(__name__)


class TrainConfigError(ValueError):
    """A trial that cannot run as configured (a GAN init that is not Method 1)."""


class InjectedFault(RuntimeError):
    """Raised by the fault-injection hook (FACESR_FAULT_STEP) to exercise retries and resume."""


@dataclass(frozen=True)
class LoopResult:
    step: int
    resumed_from: int
    metrics: dict[str, float]
    generator: Path
    curves: Path
    lpips_skipped: str | None
    train_s: float
    precision: dict[str, str | bool] = dataclasses.field(default_factory=dict)  # Precision.as_dict()


# ----------------------------------------------------------------------------------------- setup

def seed_everything(seed: int, device: torch.device) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cpu":
        # bitwise-equal resume is promised on CPU; warn_only keeps ops without a deterministic
        # kernel usable instead of failing a multi-hour run
        torch.use_deterministic_algorithms(True, warn_only=True)


def make_optimizer(parameters, lr: float, rmsprop: RMSProp) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(parameters, lr=lr, alpha=rmsprop.alpha, eps=rmsprop.eps,
                               momentum=rmsprop.momentum, weight_decay=rmsprop.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: Schedule, steps: int):
    sched = torch.optim.lr_scheduler
    if schedule.name == "multistep":
        milestones = sorted({max(1, round(f * steps)) for f in schedule.milestones})
        return sched.MultiStepLR(optimizer, milestones=milestones, gamma=schedule.gamma)
    if schedule.name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(1, steps), eta_min=schedule.eta_min)
    return sched.LambdaLR(optimizer, lambda _step: 1.0)


def loop_precision(cfg: ContentLoop | GanLoop, device: torch.device) -> Precision:
    """The loop's `precision` / `channels_last` on `device` (facesr.device.resolve_precision)."""
    return resolve_precision(device, cfg.precision, cfg.channels_last, setting="loop")


def fp32(out: SROutput) -> SROutput:
    """A generator's output in fp32, for the losses: autocast leaves bf16 activations; an fp32
    output is returned as is (Tensor.float() of an fp32 tensor is the tensor itself)."""
    return dataclasses.replace(out, **{f.name: getattr(out, f.name).float() for f in dataclasses.fields(out)
                                       if getattr(out, f.name) is not None})


def _check_finite(step: int, **losses: torch.Tensor) -> None:
    bad = {k: float(v) for k, v in losses.items() if not math.isfinite(float(v.detach()))}
    if bad:
        raise FloatingPointError(f"step {step}: {bad}; lower the learning rate(s) or check the data")


# ----------------------------------------------------------------------------------------- tasks

class ContentTask:
    """SRResNet / Method 1 trained with the content loss (coarse + parsing + fine MSE)."""

    def __init__(self, trial: Trial, cfg: ContentLoop, device: torch.device, init: Path | None):
        self.generator = build_model(trial.model, **trial.model_args).to(device)
        self.loss = ContentLoss(**vars(cfg.loss_weights)).to(device)
        self.optimizer = make_optimizer(self.generator.parameters(), cfg.lr, cfg.rmsprop)
        self.scheduler = make_scheduler(self.optimizer, cfg.lr_schedule, cfg.steps)
        self.modules = {"model": self.generator, "optimizer": self.optimizer, "scheduler": self.scheduler}

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> nn.Module:
        """The generator's forward for a multi-worker trial (`wrap` = Distributed.wrap)."""
        return wrap(self.generator)

    def step(self, step: int, batch: dict[str, torch.Tensor], forward: nn.Module, autocast):
        with autocast:
            out = fp32(forward(batch["lr"]))
        loss, parts = self.loss(out, batch["hr"], batch["parsing"])  # in fp32, outside autocast
        _check_finite(step, loss=loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": float(loss.detach()), **{f"loss_{k}": float(v.detach()) for k, v in parts.items()}}, out.sr


class GanTask:
    """Method 2: the generator starts from the Method 1 export `init`; D and G alternate (SRGAN order).

    G minimises ``alpha*L_content + beta*L_vgg + gamma*L_adv``; D the BCE of real vs fake logits.
    """

    def __init__(self, trial: Trial, cfg: GanLoop, device: torch.device, init: Path | None):
        self.generator, meta = load_generator(init, map_location=device)
        if meta["model"] != "method1":
            raise TrainConfigError(f"{init}: the GAN starts from a method1 generator, this file holds '{meta['model']}'")
        self.disc = build_model("discriminator", **cfg.discriminator_args).to(device)
        self.loss = ContentLoss(**vars(cfg.loss_weights)).to(device)
        self.perceptual = PerceptualLoss(net=cfg.perceptual_net).to(device)
        self.optimizer = make_optimizer(self.generator.parameters(), cfg.lr_g, cfg.rmsprop)
        self.opt_d = make_optimizer(self.disc.parameters(), cfg.lr_d, cfg.rmsprop)
        self.scheduler = make_scheduler(self.optimizer, cfg.lr_schedule, cfg.steps)
        self.sched_d = make_scheduler(self.opt_d, cfg.lr_schedule, cfg.steps)
        self.weights = (cfg.alpha, cfg.beta, cfg.gamma)
        self.modules = {"model": self.generator, "discriminator": self.disc, "optimizer": self.optimizer,
                        "optimizer_d": self.opt_d, "scheduler": self.scheduler, "scheduler_d": self.sched_d}

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> nn.Module:
        """The generator's forward for a multi-worker trial; the discriminator, which `step` calls
        as `self.disc`, is wrapped too (`self.modules` keeps the bare one for checkpoints)."""
        self.disc = wrap(self.disc)
        return wrap(self.generator)

    def step(self, step: int, batch: dict[str, torch.Tensor], forward: nn.Module, autocast):
        alpha, beta, gamma = self.weights
        # D step on a detached fake, then the G step against the updated D; the networks run under
        # autocast, every loss on fp32 values outside it (the VGG trunk's feature MSE is one autocast
        # computes in fp32 itself)
        with autocast:
            out = fp32(forward(batch["lr"]))
            sr = out.sr
            real_logits, fake_logits = self.disc(batch["hr"]).float(), self.disc(sr.detach()).float()
        d_loss = discriminator_loss(real_logits, fake_logits)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        l_content, parts = self.loss(out, batch["hr"], batch["parsing"])
        with autocast:
            l_vgg = self.perceptual(sr, batch["hr"]).float()
            adv_logits = self.disc(sr).float()
        l_adv = generator_adversarial_loss(adv_logits)
        g_loss = alpha * l_content + beta * l_vgg + gamma * l_adv
        _check_finite(step, g_loss=g_loss, d_loss=d_loss)
        self.optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.sched_d.step()
        row = {"loss": g_loss, "loss_d": d_loss, "loss_content": l_content, "loss_vgg": l_vgg, "loss_adv": l_adv,
               **{f"loss_{k}": v for k, v in parts.items()}}
        return {k: float(v.detach()) for k, v in row.items()}, sr


# ------------------------------------------------------------------------------------------ loop

def train(trial: Trial, *, data_root: str | Path, workdir: str | Path, identity: RunIdentity,
          init: str | Path | None = None, on_event: EventHook | None = None,
          dist: Distributed | None = None) -> LoopResult:
    """Train one trial in `workdir` (last.pt, previous.pt, curves.csv, samples/, generator.pt).

    `dist`: this process is one worker of a multi-worker trial (its rank, the world size, its
    device); None (one worker) is the single-process loop, with no process group.
    """
    cfg, data_root, workdir = trial.loop, Path(data_root), Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    emit = on_event or (lambda kind, step, payload: None)
    leader, shard = dist is None or dist.leader, dist and dist.shard
    device = dist.device if dist else torch.device(resolve_device(cfg.device, setting="loop.device"))
    precision = loop_precision(cfg, device)
    log.info("%s: %s", trial.variant, precision.reason)
    channels_last, autocast = precision.channels_last, precision.autocast()

    seed_everything(cfg.seed, device)
    task = (GanTask if isinstance(cfg, GanLoop) else ContentTask)(trial, cfg, device, Path(init) if init else None)
    for module in task.modules.values():
        if isinstance(module, nn.Module):  # weights stay fp32; only their layout changes
            precision.prepare(module)
    forward = task.generator if dist is None else task.distribute(dist.wrap)
    forward = torch.compile(forward) if cfg.compile else forward

    step, history = 0, []
    if dist is None:
        ckpt = resume_from(workdir, identity, map_location=device)
    else:  # rank 0 picks the checkpoint (its workdir holds them) and every rank loads that one
        ckpt = dist.broadcast(resume_from(workdir, identity, map_location="cpu") if leader else None)
    if ckpt is not None:
        for key, module in task.modules.items():
            module.load_state_dict(ckpt[key])
        set_rng_state(ckpt["rng"])
        step, history = int(ckpt["step"]), list(ckpt["history"])
        emit("resumed", step, history)
    start = step

    # flips are a function of (seed, step), applied below, not the dataset's random ones
    train_set = FaceSRDataset(data_root, "train", hflip=False)
    perm = flip_permutation(read_manifest(data_root)["parts"])
    sampler = StepBatchSampler(len(train_set), cfg.batch_size, cfg.seed, cfg.steps, start=start,
                               where=f"{data_root}/train", shard=shard)
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, num_workers=cfg.num_workers,
                                         pin_memory=device.type == "cuda")
    validator = Validator(data_root, faces=cfg.val_faces, sample_faces=cfg.sample_faces,
                          use_lpips=cfg.val_lpips, device=device, batch_size=cfg.batch_size) if leader else None

    for module in task.modules.values():
        if isinstance(module, nn.Module):
            module.train()
    started = tick = time.perf_counter()
    train_s = _train_s(history)
    for batch in progress(loader, total=len(sampler), desc=f"train {trial.variant}", unit="step"):
        step += 1
        if cfg.hflip:
            batch = flip_batch(batch, seed=cfg.seed, step=step, perm=perm, shard=shard)
        batch = _to_device(batch, device, channels_last)
        losses, sr = task.step(step, batch, forward, autocast)
        train_s += time.perf_counter() - tick

        if step % cfg.log_every == 0 or step == cfg.steps:
            measured = {**losses, "train_psnr": _batch_psnr(sr, batch["hr"])}
            if dist is not None:  # the global batch's means: every rank logs at the same steps
                measured = dist.mean(measured)
            row = {"step": step, **measured, "lr": task.scheduler.get_last_lr()[0],
                   "images_per_s": (step - start) * cfg.batch_size / max(time.perf_counter() - started, 1e-9),
                   "train_s": train_s}
            history.append(row)
            emit("train", step, row)
        if leader and (step % cfg.val_every == 0 or step == cfg.steps):
            scores, samples = validator(task.generator, autocast)
            history.append({"step": step, **scores})
            emit("val", step, scores)
            emit("sample", step, validator.save_grid(samples, workdir / "samples" / f"step_{step:06d}.png"))
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            path = None
            if leader:
                path = save_checkpoint(workdir, {
                    "identity": identity.as_dict(), "params": trial.to_dict(), "step": step,
                    **{key: module.state_dict() for key, module in task.modules.items()},
                    "rng": rng_state(), "history": history})
                write_curves(workdir / "curves.csv", history)
            emit("checkpoint", step, path)
        _maybe_fault(workdir, step, dist.rank if dist else 0)
        tick = time.perf_counter()

    if not leader:  # rank 0 validates and exports the (identical) weights
        return LoopResult(step=step, resumed_from=start, metrics={}, generator=workdir / "generator.pt",
                          curves=workdir / "curves.csv", lpips_skipped=None, train_s=_train_s(history),
                          precision=precision.as_dict())

    # a run of 0 steps exports the initial generator, still validated so it can be compared
    final = last_val(history) or validator(task.generator, autocast)[0]
    if not (workdir / "curves.csv").exists():
        write_curves(workdir / "curves.csv", history)
    generator = save_generator(workdir / "generator.pt", task.generator.cpu(), params=trial.to_dict(),
                               metrics=final, extra={"step": step, "identity": identity.as_dict(),
                                                     **({"init": str(init)} if init else {})})
    return LoopResult(step=step, resumed_from=start, metrics=final, generator=generator,
                      curves=workdir / "curves.csv", lpips_skipped=validator.lpips_error, train_s=_train_s(history),
                      precision=precision.as_dict())


# --------------------------------------------------------------------------------------- helpers

def _to_device(batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {k: v.to(device, non_blocking=True, memory_format=fmt) if v.dim() == 4 else v.to(device)
            for k, v in batch.items()}


def _batch_psnr(sr: torch.Tensor, hr: torch.Tensor) -> float:
    return float(psnr(sr.detach().float().clamp(0, 1), hr.float()).mean())


def _train_s(history: list[dict[str, float]]) -> float:
    """Seconds spent in training steps so far (data loading included; validation and checkpoints
    not), carried in the history so that a resumed run keeps counting: the equal-wall-clock axis."""
    return next((float(r["train_s"]) for r in reversed(history) if "train_s" in r), 0.0)


def _maybe_fault(workdir: Path, step: int, rank: int = 0) -> None:
    """Chaos hook for tests and drills: fail once at step N (raise, SIGKILL, or truncate last.pt and
    raise), or `pause` there: write this process's pid to the marker and wait to be killed from
    outside (a real SIGKILL at a known step). In a multi-worker trial only rank FACESR_FAULT_RANK
    (default 0) fires.

    A marker file makes it fire once per workdir, so the retried/resumed run gets past it.
    """
    target = os.environ.get(FAULT_STEP_ENV)
    if not target or int(target) != step or (workdir / f".fault_fired_{step}").exists():
        return
    if rank != int(os.environ.get(FAULT_RANK_ENV, "0")):
        return
    mode = os.environ.get(FAULT_MODE_ENV, "raise")
    atomic_write_text(workdir / f".fault_fired_{step}", f"{os.getpid()}\n" if mode == "pause" else "")
    if mode == "pause":
        time.sleep(600)  # the drill kills this process; if nobody does, it fails below
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "corrupt":
        last = workdir / "last.pt"
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    raise InjectedFault(f"injected fault at step {step} ({FAULT_STEP_ENV}, mode {mode})")
