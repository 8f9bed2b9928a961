"""The two training loops: content loss (SRResNet, Method 1) and the GAN (Method 2).

Both read top to bottom the same way: set up (seed, model, optimizer, schedule, data), resume
from ``<workdir>/last.pt`` if present, then per step: batch -> loss -> update -> log ->
validate every ``val_every`` -> checkpoint every ``ckpt_every`` (and at the end). A run killed at
any point and started again with the same workdir and params ends with the same weights as an
uninterrupted one (on CPU, fixed seed): batches are a function of (seed, step) and every RNG,
optimizer, scheduler and scaler state is in the checkpoint.

A trial's params (one dict, see docs/training.md) are indexed directly: a missing key is an error.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facesr.train.checkpoint import find_last, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from facesr.train.data import StepBatchSampler, flip_batch, flip_permutation, read_parts

# Called as on_event(kind, step, payload): kind "train"/"val" with a dict of floats, "sample"
# with a PNG path, "checkpoint" with the checkpoint path. Ray reporting and MLflow logging hook here.
EventHook = Callable[[str, int, Any], None]

FAULT_STEP_ENV = "FACESR_FAULT_STEP"
FAULT_MODE_ENV = "FACESR_FAULT_MODE"


class TrainConfigError(ValueError):
    """Trial params that cannot drive a training loop (unknown schedule, bad precision, ...)."""


class InjectedFault(RuntimeError):
    """Raised by the fault-injection hook (FACESR_FAULT_STEP) to exercise retries and resume."""


# ----------------------------------------------------------------------------------------- setup

def pick_device(params: dict[str, Any]) -> torch.device:
    want = params["device"]
    if want == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if want == "cuda" and not torch.cuda.is_available():
        raise TrainConfigError("params device: cuda requested but no CUDA device is available")
    return torch.device(want)


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


def make_optimizer(parameters, lr: float, rmsprop: dict[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(parameters, lr=float(lr), alpha=float(rmsprop["alpha"]),
                               eps=float(rmsprop["eps"]), momentum=float(rmsprop["momentum"]),
                               weight_decay=float(rmsprop["weight_decay"]))


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: dict[str, Any], steps: int):
    name = schedule["name"]
    sched = torch.optim.lr_scheduler
    if name == "none":
        return sched.LambdaLR(optimizer, lambda _step: 1.0)
    if name == "multistep":
        # milestones are fractions of the run so a profile's `steps` can change without editing them
        milestones = sorted({max(1, round(f * steps)) for f in schedule["milestones"]})
        return sched.MultiStepLR(optimizer, milestones=milestones, gamma=float(schedule["gamma"]))
    if name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(1, steps), eta_min=float(schedule["eta_min"]))
    raise TrainConfigError(f"params lr_schedule.name: '{name}' is not one of none, multistep, cosine")


def autocast_for(device: torch.device, precision: str):
    if precision not in ("fp32", "bf16"):
        raise TrainConfigError(f"params precision: '{precision}' is not fp32 or bf16")
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _progress(total: int, initial: int, desc: str):
    from tqdm import tqdm

    disable = os.environ.get("FACESR_NO_PROGRESS") == "1" or not sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, disable=disable, dynamic_ncols=True)


def _to_device(batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {k: v.to(device, non_blocking=True, memory_format=fmt) if v.dim() == 4 else v.to(device)
            for k, v in batch.items()}


def _maybe_fault(workdir: Path, step: int) -> None:
    """Chaos hook for tests and drills: fail once at step N (raise, or SIGKILL this process).

    A marker file makes it fire once per workdir, so the retried/resumed run gets past it.
    """
    target = os.environ.get(FAULT_STEP_ENV)
    if not target or int(target) != step:
        return
    marker = workdir / f".fault_fired_{step}"
    if marker.exists():
        return
    marker.touch()
    if os.environ.get(FAULT_MODE_ENV, "raise") == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedFault(f"injected fault at step {step} ({FAULT_STEP_ENV})")


def write_curves(path: Path, history: list[dict[str, float]]) -> Path:
    """Per-step CSV of every logged value (train and val rows share the step column)."""
    import io

    from facesr.fileio import atomic_write_text

    keys: list[str] = ["step"]
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return atomic_write_text(path, buf.getvalue())


# ------------------------------------------------------------------------------------ validation

class Validator:
    """PSNR/SSIM (+ LPIPS when its weights are present) of a model on the first `faces` val faces."""

    def __init__(self, data_root: Path, *, faces: int, sample_faces: int, use_lpips: bool,
                 device: torch.device, batch_size: int):
        from facesr.data import FaceSRDataset

        dataset = FaceSRDataset(data_root, "val", hflip=False)
        self.parts = list(dataset.parts)
        n = min(faces, len(dataset))
        if n == 0:
            raise TrainConfigError(f"{data_root}: the val split is empty; validation needs faces")
        items = [dataset[i] for i in range(n)]
        self.batch = {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in ("lr", "hr", "parsing")}
        self.sample_faces = min(sample_faces, n)
        self.device, self.batch_size = device, batch_size
        self.lpips = None
        self.lpips_error = None
        if use_lpips:
            from facesr.metrics import LPIPS

            try:
                self.lpips = LPIPS("alex", device=str(device))
            except Exception as exc:  # MissingWeightsError: validation goes on with PSNR/SSIM
                self.lpips_error = str(exc)

    @torch.no_grad()
    def __call__(self, model: nn.Module, autocast) -> tuple[dict[str, float], torch.Tensor]:
        from facesr.metrics import compute_metrics
        from facesr.models import sr_of

        was_training = model.training
        model.eval()
        # region PSNRs are NaN for faces without that region: average over the faces that have it
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        n = self.batch["lr"].shape[0]
        samples = None
        for start in range(0, n, self.batch_size):
            part = {k: v[start:start + self.batch_size].to(self.device) for k, v in self.batch.items()}
            with autocast:
                out = model(part["lr"])
            sr = sr_of(out).float().clamp(0, 1)
            pred_parsing = (out[1].float().clamp(0, 1)
                            if isinstance(out, tuple) and out[1] is not None else None)
            scores = compute_metrics(sr, part["hr"], lpips=self.lpips, parsing=part["parsing"],
                                     pred_parsing=pred_parsing, parts=self.parts)
            for key, value in scores.items():
                finite = torch.isfinite(value)
                sums[key] = sums.get(key, 0.0) + float(value[finite].double().sum())
                counts[key] = counts.get(key, 0) + int(finite.sum())
            if samples is None:
                samples = sr[: self.sample_faces].cpu()
        model.train(was_training)
        return {f"val_{k}": sums[k] / counts[k] for k in sums if counts[k]}, samples

    def save_grid(self, sr: torch.Tensor, path: Path) -> Path:
        """LR (nearest x8) | SR | HR, one face per row."""
        import torch.nn.functional as F
        from torchvision.utils import save_image

        k = sr.shape[0]
        lr_up = F.interpolate(self.batch["lr"][:k], scale_factor=8, mode="nearest")
        rows = torch.stack([lr_up, sr, self.batch["hr"][:k]], dim=1).flatten(0, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.png")
        save_image(rows, tmp, nrow=3, padding=2)
        os.replace(tmp, path)
        return path


# ----------------------------------------------------------------------------------------- losses

def _training_data(params: dict[str, Any], data_root: Path, device: torch.device, *, start: int):
    """The train loader from step `start` (deterministic in the seed), the flip permutation of the
    parsing channels, and the validator over the first `val_faces` val faces."""
    from facesr.data import FaceSRDataset

    train_set = FaceSRDataset(data_root, "train", hflip=False)
    sampler = StepBatchSampler(len(train_set), int(params["batch_size"]), int(params["seed"]), int(params["steps"]),
                               start=start, where=f"{data_root}/train")
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, num_workers=int(params["num_workers"]),
                                         pin_memory=device.type == "cuda")
    perm = flip_permutation(read_parts(data_root))
    validator = Validator(data_root, faces=int(params["val_faces"]), sample_faces=int(params["sample_faces"]),
                          use_lpips=bool(params["val_lpips"]), device=device, batch_size=int(params["batch_size"]))
    return loader, sampler, perm, validator


def content_losses(loss_fn: nn.Module, out, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Total content loss and its named parts (floats, for the curves)."""
    total, parts = loss_fn(out, batch["hr"], batch["parsing"])
    return total, {f"loss_{k}": float(v.detach()) for k, v in parts.items()}


def _batch_psnr(sr: torch.Tensor, hr: torch.Tensor) -> float:
    from facesr.metrics import psnr

    return float(psnr(sr.detach().float().clamp(0, 1), hr.float()).mean())


# -------------------------------------------------------------------------------- content loop

def train_content(params: dict[str, Any], *, data_root: str | Path, workdir: str | Path,
                  on_event: EventHook | None = None) -> dict[str, Any]:
    """Train one trial with the content loss; returns {"step", "metrics", "generator", "curves"}.

    `params` is the trial config (see docs/training.md); `workdir` holds last.pt, curves.csv,
    samples/ and generator.pt, and is where a rerun resumes from.
    """
    from facesr.losses import ContentLoss
    from facesr.models import build_model, save_generator, sr_of

    data_root, workdir = Path(data_root), Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    emit = on_event or (lambda kind, step, payload: None)
    device = pick_device(params)
    steps, seed = int(params["steps"]), int(params["seed"])
    channels_last = bool(params["channels_last"]) and device.type == "cuda"
    autocast = autocast_for(device, params["precision"])

    seed_everything(seed, device)
    model = build_model(params["model"], **params["model_args"]).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = ContentLoss(**params["loss_weights"]).to(device)
    optimizer = make_optimizer(model.parameters(), params["lr"], params["rmsprop"])
    scheduler = make_scheduler(optimizer, params["lr_schedule"], steps)
    forward = torch.compile(model) if params["compile"] and device.type == "cuda" else model

    step, history = 0, []
    last = find_last(workdir)
    if last is not None:
        ckpt = load_checkpoint(last, params=params, map_location=device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        step, history = int(ckpt["step"]), list(ckpt["history"])

    def checkpoint() -> None:
        path = save_checkpoint(workdir, {
            "model_name": params["model"], "model_args": model.spec["model_args"], "params": params,
            "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": {}, "rng": rng_state(), "history": history,
        })
        write_curves(workdir / "curves.csv", history)
        emit("checkpoint", step, path)

    loader, sampler, perm, validator = _training_data(params, data_root, device, start=step)

    model.train()
    bar = _progress(steps, step, f"train {params['variant']}")
    started = time.perf_counter()
    train_s = resumed_train_s(history)
    tick = started
    for batch in loader:
        step += 1
        if params["hflip"]:
            batch = flip_batch(batch, seed=seed, step=step, perm=perm)
        batch = _to_device(batch, device, channels_last)

        with autocast:
            out = forward(batch["lr"])
            loss, parts = content_losses(loss_fn, out, batch)
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"step {step}: loss is {float(loss)}; lower lr "
                                     f"(now {scheduler.get_last_lr()[0]:.3g}) or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        bar.update(1)
        train_s += time.perf_counter() - tick

        if step % int(params["log_every"]) == 0 or step == steps:
            row = {"step": step, "loss": float(loss.detach()), **parts,
                   "train_psnr": _batch_psnr(sr_of(out), batch["hr"]), "lr": scheduler.get_last_lr()[0],
                   "images_per_s": step_rate(started, step - (sampler.start), int(params["batch_size"])),
                   "train_s": train_s}
            history.append(row)
            emit("train", step, row)
        if step % int(params["val_every"]) == 0 or step == steps:
            scores, samples = validator(model, autocast)
            history.append({"step": step, **scores})
            emit("val", step, scores)
            emit("sample", step, validator.save_grid(samples, workdir / "samples" / f"step_{step:06d}.png"))
        if step % int(params["ckpt_every"]) == 0 or step == steps:
            checkpoint()
        _maybe_fault(workdir, step)
        tick = time.perf_counter()
    bar.close()

    final = last_val(history)
    generator = save_generator(workdir / "generator.pt", model.cpu() if device.type != "cpu" else model,
                               params=params, metrics=final, extra={"step": step})
    return {"step": step, "resumed_from": sampler.start, "metrics": final, "generator": str(generator),
            "curves": str(workdir / "curves.csv"), "lpips_skipped": validator.lpips_error,
            "train_s": resumed_train_s(history)}


def resumed_train_s(history: list[dict[str, float]]) -> float:
    """Seconds spent in training steps so far (data loading included; validation and checkpoints
    not), carried in the history so that a resumed run keeps counting: the equal-wall-clock axis."""
    return next((float(r["train_s"]) for r in reversed(history) if "train_s" in r), 0.0)


def step_rate(started: float, steps_done: int, batch_size: int) -> float:
    elapsed = time.perf_counter() - started
    return steps_done * batch_size / elapsed if elapsed > 0 else 0.0


def last_val(history: list[dict[str, float]]) -> dict[str, float]:
    for row in reversed(history):
        if any(k.startswith("val_") for k in row):
            return {k: v for k, v in row.items() if k != "step"}
    return {}


# ------------------------------------------------------------------------------------ GAN loop

def train_gan(params: dict[str, Any], *, data_root: str | Path, init: str | Path, workdir: str | Path,
              on_event: EventHook | None = None) -> dict[str, Any]:
    """Method 2: the generator starts from the exported Method 1 file `init`; D and G alternate.

    G minimises ``alpha*L_content + beta*L_vgg + gamma*L_adv``; D the BCE of real vs fake logits.
    Both use RMSProp.
    """
    from facesr.losses import ContentLoss, PerceptualLoss, discriminator_loss, generator_adversarial_loss
    from facesr.models import build_model, load_generator, save_generator, sr_of

    data_root, workdir = Path(data_root), Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    emit = on_event or (lambda kind, step, payload: None)
    device = pick_device(params)
    steps, seed = int(params["steps"]), int(params["seed"])
    channels_last = bool(params["channels_last"]) and device.type == "cuda"
    autocast = autocast_for(device, params["precision"])

    seed_everything(seed, device)
    gen, init_meta = load_generator(init, map_location=device)
    if init_meta["model"] != "method1":
        raise TrainConfigError(f"{init}: the GAN starts from a method1 generator, this file holds "
                               f"'{init_meta['model']}'")
    disc = build_model("discriminator", **params["discriminator_args"]).to(device)
    if channels_last:
        gen, disc = gen.to(memory_format=torch.channels_last), disc.to(memory_format=torch.channels_last)
    content = ContentLoss(**params["loss_weights"]).to(device)
    perceptual = PerceptualLoss(net=params["perceptual_net"]).to(device)
    opt_g = make_optimizer(gen.parameters(), params["lr_g"], params["rmsprop"])
    opt_d = make_optimizer(disc.parameters(), params["lr_d"], params["rmsprop"])
    sched_g = make_scheduler(opt_g, params["lr_schedule"], steps)
    sched_d = make_scheduler(opt_d, params["lr_schedule"], steps)
    alpha, beta, gamma = float(params["alpha"]), float(params["beta"]), float(params["gamma"])

    step, history = 0, []
    last = find_last(workdir)
    if last is not None:
        ckpt = load_checkpoint(last, params=params, map_location=device)
        gen.load_state_dict(ckpt["model"])
        disc.load_state_dict(ckpt["discriminator"])
        opt_g.load_state_dict(ckpt["optimizer"])
        opt_d.load_state_dict(ckpt["optimizer_d"])
        sched_g.load_state_dict(ckpt["scheduler"])
        sched_d.load_state_dict(ckpt["scheduler_d"])
        set_rng_state(ckpt["rng"])
        step, history = int(ckpt["step"]), list(ckpt["history"])

    def checkpoint() -> None:
        path = save_checkpoint(workdir, {
            "model_name": init_meta["model"], "model_args": gen.spec["model_args"], "params": params,
            "step": step, "model": gen.state_dict(), "discriminator": disc.state_dict(),
            "optimizer": opt_g.state_dict(), "optimizer_d": opt_d.state_dict(),
            "scheduler": sched_g.state_dict(), "scheduler_d": sched_d.state_dict(), "scaler": {},
            "rng": rng_state(), "history": history,
        })
        write_curves(workdir / "curves.csv", history)
        emit("checkpoint", step, path)

    loader, sampler, perm, validator = _training_data(params, data_root, device, start=step)

    gen.train()
    disc.train()
    bar = _progress(steps, step, "train_gan")
    started = time.perf_counter()
    train_s = resumed_train_s(history)
    tick = started
    for batch in loader:
        step += 1
        if params["hflip"]:
            batch = flip_batch(batch, seed=seed, step=step, perm=perm)
        batch = _to_device(batch, device, channels_last)

        # D step on a detached fake, then the G step against the updated D (SRGAN order)
        with autocast:
            out = gen(batch["lr"])
            sr = sr_of(out)
            d_loss = discriminator_loss(disc(batch["hr"]), disc(sr.detach()))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        with autocast:
            l_content, parts = content_losses(content, out, batch)
            l_vgg = perceptual(sr, batch["hr"])
            l_adv = generator_adversarial_loss(disc(sr))
            g_loss = alpha * l_content + beta * l_vgg + gamma * l_adv
        if not (math.isfinite(float(g_loss.detach())) and math.isfinite(float(d_loss.detach()))):
            raise FloatingPointError(f"step {step}: G loss {float(g_loss)}, D loss {float(d_loss)}; lower lr_g/lr_d")
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        sched_g.step()
        sched_d.step()
        bar.update(1)
        train_s += time.perf_counter() - tick

        if step % int(params["log_every"]) == 0 or step == steps:
            row = {"step": step, "loss": float(g_loss.detach()), "loss_d": float(d_loss.detach()),
                   "loss_content": float(l_content.detach()), "loss_vgg": float(l_vgg.detach()),
                   "loss_adv": float(l_adv.detach()), **parts,
                   "train_psnr": _batch_psnr(sr, batch["hr"]), "lr": sched_g.get_last_lr()[0],
                   "images_per_s": step_rate(started, step - sampler.start, int(params["batch_size"])),
                   "train_s": train_s}
            history.append(row)
            emit("train", step, row)
        if step % int(params["val_every"]) == 0 or step == steps:
            scores, samples = validator(gen, autocast)
            history.append({"step": step, **scores})
            emit("val", step, scores)
            emit("sample", step, validator.save_grid(samples, workdir / "samples" / f"step_{step:06d}.png"))
        if step % int(params["ckpt_every"]) == 0 or step == steps:
            checkpoint()
        _maybe_fault(workdir, step)
        tick = time.perf_counter()
    bar.close()

    final = last_val(history)
    if steps == 0:
        # nothing trained: the export is the initial generator, still validated so it can be compared
        scores, _ = validator(gen, autocast)
        final = scores
    gen_cpu = gen.cpu() if device.type != "cpu" else gen
    generator = save_generator(workdir / "generator.pt", gen_cpu, params=params, metrics=final,
                               extra={"step": step, "init": str(init)})
    return {"step": step, "resumed_from": sampler.start, "metrics": final, "generator": str(generator),
            "curves": str(workdir / "curves.csv"), "lpips_skipped": validator.lpips_error,
            "train_s": resumed_train_s(history)}
