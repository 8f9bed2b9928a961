"""One training step of a facesr model, timed, with its FLOPs: shared by train_throughput.py and gpu_check.py.

A step is what facesr.train.loop does per batch: forward under the precision's autocast, the
loss on fp32 outputs, backward, RMSProp. Models:

* ``srresnet``, ``method1``: the content loss (coarse + parsing + fine MSE; SRResNet's is the fine term);
* ``discriminator``: D's BCE on an HR batch and an SR-sized fake batch (the GAN's D step alone);
* ``gan``: Method 2's step, a D step then a G step with content + VGG16 features + adversarial terms
  (needs torchvision and the VGG16 weights of ``facesr weights fetch``).

Imports torch, facesr.models, facesr.losses and facesr.device only (no YAML, no Ray/MLflow), so the
GPU check can use it on a bare machine.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

GENERATORS = ("srresnet", "method1")
MODELS = ("srresnet", "method1", "gan", "discriminator")


def build_step(model: str, model_args: dict[str, Any], disc_args: dict[str, Any], batch: int, device: str,
               precision: str, channels_last: bool, compile_: bool = False, seed: int = 0) -> Callable[[], None]:
    """A closure that runs one train step on fixed random tensors (speed does not depend on the data)."""
    import torch

    from facesr.device import PrecisionWarning, resolve_precision
    from facesr.losses import ContentLoss, PerceptualLoss, discriminator_loss, generator_adversarial_loss
    from facesr.models import build_model

    if model not in MODELS:
        raise ValueError(f"model {model!r} is not one of {', '.join(MODELS)}")
    with warnings.catch_warnings():  # slow bf16 is what is being measured here
        warnings.simplefilter("ignore", PrecisionWarning)
        prec = resolve_precision(device, precision, channels_last)
    dev = torch.device(device)
    torch.manual_seed(seed)
    gen = disc = perceptual = None
    if model != "discriminator":
        gen = prec.prepare(build_model("method1" if model == "gan" else model, **model_args).to(dev))
    if model in ("gan", "discriminator"):
        disc = prec.prepare(build_model("discriminator", **disc_args).to(dev))
    if model == "gan":
        perceptual = PerceptualLoss(net="vgg16").to(dev)
    content = ContentLoss().to(dev)
    opt = torch.optim.RMSprop(gen.parameters(), lr=1e-4) if gen is not None else None
    opt_d = torch.optim.RMSprop(disc.parameters(), lr=1e-4) if disc is not None else None
    fwd = torch.compile(gen) if (compile_ and gen is not None) else gen
    d_fwd = torch.compile(disc) if (compile_ and disc is not None and gen is None) else disc
    lr = prec.inputs(torch.rand(batch, 3, 16, 16, device=dev))
    hr = prec.inputs(torch.rand(batch, 3, 128, 128, device=dev))
    parsing = prec.inputs(torch.rand(batch, 11, 128, 128, device=dev))
    fake = prec.inputs(torch.rand(batch, 3, 128, 128, device=dev))

    def d_step(sr: torch.Tensor) -> None:
        with prec.autocast():
            real_logits, fake_logits = d_fwd(hr).float(), d_fwd(sr.detach()).float()
        loss = discriminator_loss(real_logits, fake_logits)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()

    def step() -> None:
        if gen is None:
            d_step(fake)
            return
        with prec.autocast():
            out = fwd(lr)
        out_sr = out.sr.float()
        if disc is not None:
            d_step(out_sr)
        out = replace(out, sr=out_sr, **{k: getattr(out, k).float() for k in ("coarse", "parsing")
                                          if getattr(out, k) is not None})
        loss, _ = content(out, hr, parsing)
        if disc is not None:
            with prec.autocast():
                l_vgg = perceptual(out.sr, hr).float()
                adv = disc(out.sr).float()
            loss = loss + 6e-3 * l_vgg + 1e-3 * generator_adversarial_loss(adv)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def count_flops(step: Callable[[], None]) -> int:
    """FLOPs of one call of `step` (forward + backward, as torch.utils.flop_counter counts them: the
    convolutions and matmuls, 2 per multiply-add). Runs the step once."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def time_step(step: Callable[[], None], device: str, *, steps: int, warmup: int) -> dict[str, float]:
    """Median seconds of `steps` calls after `warmup` untimed ones (CUDA: synchronised each step)."""
    import torch

    cuda = device.startswith("cuda")
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "steps": steps}


def measure(model: str, model_args: dict[str, Any], disc_args: dict[str, Any], batch: int, device: str,
            precision: str, channels_last: bool, compile_: bool = False, *, steps: int = 4, warmup: int = 1,
            flops: int | None = None) -> dict[str, Any]:
    """One case: img/s and GFLOP/s at the median step. `flops` None: counted here (eager runs only)."""
    step = build_step(model, model_args, disc_args, batch, device, precision, channels_last, compile_)
    if flops is None and not compile_:
        flops = count_flops(step)  # doubles as the first warm-up step
        warmup = max(0, warmup - 1)
    t = time_step(step, device, steps=steps, warmup=warmup)
    row: dict[str, Any] = {"model": model, "device": device, "precision": precision,
                           "channels_last": channels_last, "compile": compile_, "batch": batch,
                           "seconds_per_step": round(t["median_s"], 4), "min_s": round(t["min_s"], 4),
                           "max_s": round(t["max_s"], 4), "steps": steps,
                           "images_per_s": round(batch / t["median_s"], 2)}
    if flops:
        row["gflop_per_step"] = round(flops / 1e9, 3)
        row["gflop_per_s"] = round(flops / 1e9 / t["median_s"], 1)
    return row
