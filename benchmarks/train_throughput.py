"""Training-step throughput (images/s) and peak memory of each model, batch 16.

    .venv/bin/python benchmarks/train_throughput.py [--steps 3] [--warmup 1] [--batch 16]
        [--models srresnet method1 gan] [--out benchmarks/train_throughput.json]

One step = what facesr.train.loop does per batch: forward, loss (Method 1's content loss; for
`gan` a D step plus the G step with content + VGG16 + adversarial terms), backward, RMSProp. The
models have the thesis sizes (build_model defaults). Each case runs in a fresh subprocess so that
its peak memory is its own (CPU: peak RSS of the process; CUDA: torch.cuda.max_memory_allocated).
On CPU: fp32. When CUDA is present, also bf16 autocast + channels_last, without and with
torch.compile. Results go to the JSON file and are printed as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def one_case(model_name: str, device: str, compile_: bool, batch: int, steps: int, warmup: int) -> dict:
    import contextlib

    import torch

    from facesr.losses import ContentLoss, PerceptualLoss, discriminator_loss, generator_adversarial_loss
    from facesr.models import build_model

    dev = torch.device(device)
    torch.manual_seed(0)
    gen = build_model("method1" if model_name == "gan" else model_name).to(dev)
    fmt = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    gen = gen.to(memory_format=fmt)
    content = ContentLoss().to(dev)
    opt = torch.optim.RMSprop(gen.parameters(), lr=1e-4)
    disc = perceptual = opt_d = None
    if model_name == "gan":
        disc = build_model("discriminator").to(dev).to(memory_format=fmt)
        perceptual = PerceptualLoss(net="vgg16").to(dev)
        opt_d = torch.optim.RMSprop(disc.parameters(), lr=1e-4)
    fwd = torch.compile(gen) if compile_ else gen
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext())
    lr = torch.rand(batch, 3, 16, 16, device=dev).to(memory_format=fmt)
    hr = torch.rand(batch, 3, 128, 128, device=dev).to(memory_format=fmt)
    parsing = torch.rand(batch, 11, 128, 128, device=dev)

    def step():
        with autocast:
            out = fwd(lr)
            if disc is not None:
                d_loss = discriminator_loss(disc(hr), disc(out.sr.detach()))
        if disc is not None:
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        with autocast:
            loss, _ = content(out, hr, parsing)
            if disc is not None:
                sr = out.sr
                loss = loss + 6e-3 * perceptual(sr, hr) + 1e-3 * generator_adversarial_loss(disc(sr))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / steps
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"model": model_name, "device": device, "precision": "bf16" if dev.type == "cuda" else "fp32",
            "channels_last": dev.type == "cuda", "compile": compile_, "batch": batch,
            "seconds_per_step": round(seconds, 4), "images_per_s": round(batch / seconds, 2),
            "peak_memory_mib": round(peak / 2**20, 1), "threads": torch.get_num_threads()}


def machine() -> str:
    import os

    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}), {os.cpu_count()} CPU cores"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["srresnet", "method1", "gan"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/train_throughput.json")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: model,device,compile
    args = parser.parse_args(argv)

    if args.case:
        model, device, compile_ = args.case.split(",")
        print(json.dumps(one_case(model, device, compile_ == "1", args.batch, args.steps, args.warmup)))
        return 0

    import torch

    cases = [(m, "cpu", "0") for m in args.models]
    if torch.cuda.is_available():
        cases += [(m, "cuda", c) for m in args.models for c in ("0", "1")]
    results = []
    for case in cases:
        proc = subprocess.run([sys.executable, __file__, "--case", ",".join(case), "--batch", str(args.batch),
                               "--steps", str(args.steps), "--warmup", str(args.warmup)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{case}: failed\n{proc.stderr[-1500:]}", file=sys.stderr)
            results.append({"model": case[0], "device": case[1], "compile": case[2] == "1",
                            "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"})
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    report = {"machine": machine(), "torch": torch.__version__, "command": "python " + " ".join(sys.argv),
              "results": results}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nmachine: {report['machine']}\n")
    print("| model | device | precision | compile | img/s | s/step | peak MiB |\n|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['model']} | {r['device']} | | {r['compile']} | failed: {r['error']} | | |")
        else:
            print(f"| {r['model']} | {r['device']} | {r['precision']} | {r['compile']} | {r['images_per_s']} "
                  f"| {r['seconds_per_step']} | {r['peak_memory_mib']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
