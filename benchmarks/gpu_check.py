"""The first-GPU-machine check: CUDA train throughput of the thesis-size models, and a short real
training of Method 1 in fp32 and in the `auto` precision on synthetic faces made at run time. On a
machine with more than one GPU, Method 1's train step in DDP on 1, 2 and all GPUs (nccl, 16 faces
per GPU: benchmarks/train_ddp.py's `ddp_throughput`, the loop's multi-worker path); the CPU smoke
runs that case with 2 gloo workers.

    python benchmarks/gpu_check.py --out DIR [--device cuda] [--budget-s 420]
    python benchmarks/gpu_check.py --device cpu --smoke --out DIR     # tiny sizes, < 1 min; the test suite runs it

Runs on a machine as it comes: Python, torch, numpy, Pillow (no YAML, Ray, MLflow, Prefect, DVC,
lpips, torchvision or tqdm are imported; the JSON lists every third-party module that was). Sizes:
the thesis' models are build_model's defaults (tests/test_gpu_check.py checks profiles/thesis.yaml
says the same), batch 16 as in the thesis profile. Phases stop starting new cases when `--budget-s`
is spent, so the whole run stays under 8 minutes; what was skipped is written down, never dropped.
Writes gpu_check.json and gpu_check.md into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

FORBIDDEN = ("ray", "mlflow", "prefect", "dvc", "lpips", "yaml", "torchvision", "tqdm")
TINY = {"srresnet": {"num_feat": 8, "num_block": 1},
        "method1": {"num_feat": 8, "num_block": 1, "prior_feat": 8, "prior_res_blocks": 1, "num_hourglass": 1,
                    "hourglass_depth": 2},
        "discriminator": {"num_feat": 4}}
# (precision, channels_last, compile)
MODES = [("fp32", False, False), ("bf16", True, False), ("fp32", False, True), ("bf16", True, True)]
# the synthetic faces' label names of the 11 parsing channels (SPEC.md order)
PARTS = ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip", "l_ear", "r_ear")


class Clock:
    def __init__(self, budget_s: float):
        self.start, self.budget_s = time.perf_counter(), budget_s

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)


def third_party_modules() -> list[str]:
    """Top-level modules loaded from site-/dist-packages (what this run needed beyond the stdlib)."""
    names = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if "-packages" in path and not name.startswith("_"):
            names.add(name.split(".")[0])
    return sorted(names)


def environment(device: str) -> dict:
    import torch

    from facesr.device import cpu_flags, fast_bf16

    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "device": device, "cpu_cores": os.cpu_count(), **cpu_flags(), "cpu_fast_bf16": fast_bf16("cpu")}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}", cuda_fast_bf16=fast_bf16("cuda"),
                   cudnn=torch.backends.cudnn.version())
    return env


def throughput(device: str, smoke: bool, clock: Clock, batch: int, steps: int) -> list[dict]:
    import torch
    from train_step import measure

    rows = []
    models = ("srresnet", "method1", "discriminator")
    # smoke: each code path once (bf16 on one model: emulated bf16 is slow on a CPU without AVX512_BF16);
    # torch.compile on CPU needs minutes and a C++ compiler
    modes = [m for m in MODES if not (smoke and m[2])]
    flops: dict[str, int] = {}
    for precision, channels_last, compile_ in modes:
        for model in models:
            case = {"model": model, "precision": precision, "channels_last": channels_last, "compile": compile_}
            if smoke and precision == "bf16" and model != "srresnet":
                continue
            if clock.left() < (120 if compile_ else 20) and not smoke:
                rows.append({**case, "skipped": f"time budget ({clock.left():.0f} s left)"})
                continue
            args = TINY[model] if smoke else {}
            disc = TINY["discriminator"] if smoke else {}
            try:
                t0 = time.perf_counter()
                row = measure(model, {} if model == "discriminator" else args, disc, batch, device, precision,
                              channels_last, compile_, steps=steps, warmup=2 if compile_ else 1,
                              flops=flops.get(model))
                row["case_wall_s"] = round(time.perf_counter() - t0, 1)
                if device.startswith("cuda"):
                    row["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
                flops.setdefault(model, int(row.get("gflop_per_step", 0) * 1e9) or None)
                rows.append(row)
            except Exception as exc:  # a failed case (no compiler for torch.compile, OOM) is a finding
                rows.append({**case, "error": f"{type(exc).__name__}: {exc}"[:500],
                             "trace": traceback.format_exc()[-1500:]})
            finally:
                if compile_:
                    torch.compiler.reset()
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "trace"}), flush=True)
    return rows


def synthetic_faces(count: int, seed: int, start: int = 0) -> dict:
    """LR (B,3,16,16), HR (B,3,128,128) and parsing (B,11,128,128), float [0,1], from
    facesr.data.synthetic drawn at 128 px; LR = Pillow bicubic (antialiased) 128 -> 16, as the
    downscale stage makes it."""
    import numpy as np
    import torch
    from PIL import Image

    from facesr.data.synthetic import LABELS, draw_params, render

    codes = [LABELS.index(p) for p in PARTS]
    hr, lr, parsing = [], [], []
    for i in range(start, start + count):
        img, label = render(draw_params(seed, i), 128)
        hr.append(img)
        lr.append(np.asarray(Image.fromarray(img).resize((16, 16), Image.BICUBIC)))
        parsing.append(np.stack([label == c for c in codes]))

    def t(a, perm):
        return torch.from_numpy(np.stack(a)).permute(*perm).float()

    return {"hr": t(hr, (0, 3, 1, 2)) / 255, "lr": t(lr, (0, 3, 1, 2)) / 255, "parsing": t(parsing, (0, 1, 2, 3))}


def train_method1(data: dict, test: dict, device: str, precision: str, *, model_args: dict, steps: int,
                  batch: int, max_s: float, seed: int = 0) -> dict:
    """Method 1 trained `steps` steps (or until `max_s`), the demo's RMSProp recipe, then scored on `test`."""
    import torch

    from facesr.device import resolve_precision
    from facesr.losses import ContentLoss
    from facesr.metrics import psnr, ssim
    from facesr.models import build_model

    prec = resolve_precision(device, precision, "auto")
    torch.manual_seed(seed)
    model = prec.prepare(build_model("method1", **model_args).to(device))
    loss_fn = ContentLoss().to(device)
    # params.yaml train.loop's demo recipe: RMSProp alpha 0.9, momentum 0.9, cosine from 2.5e-4
    opt = torch.optim.RMSprop(model.parameters(), lr=2.5e-4, alpha=0.9, eps=1e-8, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    gen = torch.Generator().manual_seed(seed)
    on = {k: v.to(device) for k, v in data.items()}
    n, losses, done = on["lr"].shape[0], [], 0
    t0 = time.perf_counter()
    model.train()
    while done < steps:
        done += 1
        idx = torch.randint(0, n, (batch,), generator=gen).to(device)
        lr, hr, parsing = (prec.inputs(on[k][idx]) for k in ("lr", "hr", "parsing"))
        with prec.autocast():
            out = model(lr)
        out = type(out)(**{k: (None if v is None else v.float()) for k, v in vars(out).items()})
        loss, _ = loss_fn(out, hr, parsing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if time.perf_counter() - t0 > max_s:
            break
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad(), prec.autocast():
        sr = torch.cat([model(prec.inputs(test["lr"][i:i + 32].to(device))).sr.float().clamp(0, 1)
                        for i in range(0, test["lr"].shape[0], 32)])
    hr = test["hr"].to(device)
    bic = build_model("bicubic").to(device)(test["lr"].to(device)).sr.clamp(0, 1)
    return {"precision": prec.name, "channels_last": prec.channels_last, "steps": done, "steps_asked": steps,
            "batch": batch, "train_s": round(train_s, 1), "images_per_s": round(done * batch / train_s, 1),
            "first_loss": round(losses[0], 5), "last_loss": round(sum(losses[-10:]) / len(losses[-10:]), 5),
            "test_psnr": round(float(psnr(sr, hr).mean()), 3), "test_ssim": round(float(ssim(sr, hr).mean()), 4),
            "bicubic_psnr": round(float(psnr(bic, hr).mean()), 3), "test_faces": int(hr.shape[0]),
            "weights_dtype": str(next(model.parameters()).dtype)}


def ddp_scaling(device: str, smoke: bool, clock: Clock) -> list[dict]:
    """Method 1's step with 1, 2 and every GPU as DDP workers (16 faces per GPU, so img/s should grow
    with the GPUs); a machine of one GPU writes why it skipped. The smoke: 2 CPU workers, tiny sizes."""
    import torch
    from train_ddp import ddp_throughput

    gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
    if not smoke and gpus < 2:
        return [{"skipped": f"{gpus} GPU(s) here: the multi-GPU DDP case needs more than one"}]
    counts = [1, 2] if smoke else sorted({1, 2, gpus})
    per_worker = 2 if smoke else 16
    rows: list[dict] = []
    for n in counts:
        if not smoke and clock.left() < 30:
            rows.append({"workers": n, "skipped": f"time budget ({clock.left():.0f} s left)"})
            continue
        try:
            row = ddp_throughput(TINY["method1"] if smoke else {}, per_worker * n, n, device,
                                 steps=2 if smoke else 10, warmup=1 if smoke else 3,
                                 threads=1 if smoke else max(1, (os.cpu_count() or 1) // n))
            if rows and "images_per_s" in rows[0]:
                # img/s of n workers over n x one worker's: 1.0 is perfect weak scaling
                row["scaling_efficiency"] = round(row["images_per_s"] / (n * rows[0]["images_per_s"]), 2)
            rows.append(row)
        except Exception as exc:  # an nccl setup failure is a finding, not a crash of the check
            rows.append({"workers": n, "error": f"{type(exc).__name__}: {exc}"[:500],
                         "trace": traceback.format_exc()[-1500:]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "trace"}), flush=True)
    return rows


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [f"# GPU check ({report['mode']})", "",
             f"{env.get('gpu', 'no GPU')}, torch {env['torch']} (CUDA {env['cuda']}), Python {env['python']}, "
             f"{env['cpu_cores']} CPU cores ({env['cpu_capability']}); {report['wall_s']} s in all.", "",
             f"Command: `{report['command']}`", "",
             "## Train throughput (one step: forward, loss, backward, RMSProp)", "",
             "| model | precision | channels_last | compile | batch | img/s | s/step | GFLOP/s | peak MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["throughput"]:
        head = f"| {r['model']} | {r['precision']} | {r['channels_last']} | {r['compile']} |"
        if "images_per_s" in r:
            lines.append(f"{head} {r['batch']} | {r['images_per_s']} | {r['seconds_per_step']} "
                         f"| {r.get('gflop_per_s', '')} | {r.get('peak_memory_mib', '')} |")
        else:
            lines.append(f"{head} | {r.get('skipped') or r.get('error')} | | | |")
    lines += ["", "## Method 1, short training on synthetic faces (equal steps per precision)", "",
              "| precision | channels_last | steps | train s | img/s | loss first -> last | test PSNR | test SSIM "
              "| bicubic PSNR |", "|---|---|---|---|---|---|---|---|---|"]
    for r in report["training"]:
        if "test_psnr" in r:
            lines.append(f"| {r['precision']} | {r['channels_last']} | {r['steps']}/{r['steps_asked']} "
                         f"| {r['train_s']} | {r['images_per_s']} | {r['first_loss']} -> {r['last_loss']} "
                         f"| {r['test_psnr']} | {r['test_ssim']} | {r['bicubic_psnr']} |")
        else:
            lines.append(f"| {r.get('precision', '')} | | | | | {r.get('skipped') or r.get('error')} | | | |")
    lines += ["", "## Method 1 in DDP (one worker per GPU, nccl; the smoke: 2 CPU workers, gloo)", "",
              "| workers | global batch | img/s | s/step | scaling efficiency |", "|---|---|---|---|---|"]
    for r in report.get("ddp", []):
        if "images_per_s" in r:
            lines.append(f"| {r['workers']} | {r['global_batch']} | {r['images_per_s']} | {r['seconds_per_step']} "
                         f"| {r.get('scaling_efficiency', '')} |")
        else:
            lines.append(f"| {r.get('workers', '')} | {r.get('skipped') or r.get('error')} | | | |")
    lines += ["", f"Third-party modules imported: {', '.join(report['modules'])}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and few steps (the suite's CPU run)")
    parser.add_argument("--out", default=os.environ.get("OUT") or str(HERE / "gpu_check_out"))
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting new cases after this")
    args = parser.parse_args(argv)

    import torch

    from facesr.device import resolve_device
    from facesr.fileio import atomic_write_text

    device = resolve_device(args.device, setting="--device")
    clock = Clock(args.budget_s)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    report: dict = {"mode": "smoke" if args.smoke else "full", "command": " ".join(["python", *sys.argv]),
                    "environment": environment(device)}
    print(json.dumps(report["environment"]), flush=True)

    def save() -> None:  # after every phase: a run stopped by the hard timeout keeps what it measured
        report.update(wall_s=round(time.perf_counter() - clock.start, 1), modules=third_party_modules(),
                      forbidden_imported=[m for m in FORBIDDEN if sys.modules.get(m) is not None])
        atomic_write_text(out / "gpu_check.json", json.dumps(report, indent=2) + "\n")
        atomic_write_text(out / "gpu_check.md", markdown(report))

    batch = 2 if args.smoke else 16
    report["training"], report["ddp"] = [], []
    # throughput gets a little under half the budget, multi-GPU DDP a tenth, the two training runs the rest
    report["throughput"] = throughput(device, args.smoke, Clock(0.45 * args.budget_s), batch,
                                      steps=1 if args.smoke else 10)
    save()
    report["ddp"] = ddp_scaling(device, args.smoke, Clock(0.1 * args.budget_s))
    save()

    train_n, test_n = (8, 4) if args.smoke else (512, 64)
    data, test = synthetic_faces(train_n, seed=0), synthetic_faces(test_n, seed=0, start=train_n)
    steps = 2 if args.smoke else 800
    for precision in ("fp32", "auto"):
        # the remaining budget is shared by the two runs so that both get their turn
        share = max(10.0, (clock.left() - 20) / (2 if precision == "fp32" else 1))
        try:
            row = train_method1(data, test, device, precision, model_args=TINY["method1"] if args.smoke else {},
                                steps=steps, batch=batch, max_s=share)
        except Exception as exc:
            row = {"precision": precision, "error": f"{type(exc).__name__}: {exc}"[:500],
                   "trace": traceback.format_exc()[-1500:]}
        report["training"].append(row)
        print(json.dumps(row), flush=True)
        save()
    print(markdown(report))
    print("MODULES " + json.dumps(sorted(k for k, v in sys.modules.items() if v is not None)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
