"""Method 1 train-step throughput with 1 and N data-parallel workers (issue 24).

    .venv/bin/python benchmarks/train_ddp.py [--profile mini-cpu] [--workers 1 2] [--steps 8] [--warmup 2]
        [--out benchmarks/train_ddp.json]

A step is the loop's content step (forward, the content loss, backward, RMSProp) on the profile's
global batch (`train.loop.batch_size`): 1 worker runs it in this process as a 1-worker trial does
(no process group; once with every core's threads, once with 1 thread), N workers are N processes
(gloo on CPU, nccl on CUDA) that each run their share of the global batch through
`facesr.train.distributed.Distributed.wrap` (DDP + global-batch BatchNorm), as a trial of
`workers_per_trial: N` does; each worker gets cores / N threads. img/s = global batch / median step
seconds. Random tensors (speed does not depend on the data); fp32. Ray is not involved: it
only starts the same processes. The 1-minute load average before and after is recorded (the
machine is shared). The JSON and a markdown table (benchmarks/train_ddp.md) are written.

`ddp_throughput` is also what benchmarks/gpu_check.py runs on a machine with more than one GPU;
this module imports no YAML at the top for that reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed_steps(model_args: dict[str, Any], rows: int, device: str, steps: int, warmup: int,
                 dist: Any = None, seed: int = 0) -> list[float]:
    """Seconds of each of `steps` content steps of Method 1 on `rows` random faces (after `warmup`)."""
    import torch

    from facesr.losses import ContentLoss
    from facesr.models import build_model

    dev = torch.device(device)
    torch.manual_seed(seed)
    model = build_model("method1", **model_args).to(dev)
    loss_fn = ContentLoss().to(dev)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    forward = model if dist is None else dist.wrap(model)
    gen = torch.Generator().manual_seed(seed + (dist.rank if dist else 0))
    lr, hr = torch.rand(rows, 3, 16, 16, generator=gen).to(dev), torch.rand(rows, 3, 128, 128, generator=gen).to(dev)
    parsing = torch.rand(rows, 11, 128, 128, generator=gen).to(dev)
    cuda = dev.type == "cuda"
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss, _ = loss_fn(forward(lr), hr, parsing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize(dev)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def _worker(rank: int, world: int, port: int, backend: str, case: dict[str, Any], queue: Any) -> None:
    import torch
    import torch.distributed as torch_dist

    from facesr.train.distributed import Distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(case["threads"])
    device = f"cuda:{rank}" if backend == "nccl" else "cpu"
    if backend == "nccl":
        torch.cuda.set_device(rank)
    torch_dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        dist = Distributed(rank, world, torch.device(device))
        times = _timed_steps(case["model_args"], case["batch"] // world, device, case["steps"], case["warmup"], dist)
        if rank == 0:
            queue.put(times)
    finally:
        torch_dist.destroy_process_group()


def ddp_throughput(model_args: dict[str, Any], batch: int, workers: int, device: str, *, steps: int, warmup: int,
                   threads: int) -> dict[str, Any]:
    """One case: `workers` workers (1 = in this process, no process group) on a global `batch`;
    device "cpu" (gloo) or "cuda" (nccl, worker r on GPU r)."""
    import torch
    import torch.multiprocessing as mp

    if batch % workers:
        raise ValueError(f"global batch {batch} is not divisible by {workers} workers")
    case = {"model_args": model_args, "batch": batch, "steps": steps, "warmup": warmup, "threads": threads}
    t0 = time.perf_counter()
    if workers == 1:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            times = _timed_steps(model_args, batch, "cuda:0" if device.startswith("cuda") else "cpu", steps, warmup)
        finally:
            torch.set_num_threads(previous)
    else:
        ctx = mp.get_context("spawn")
        queue = ctx.SimpleQueue()
        backend = "nccl" if device.startswith("cuda") else "gloo"
        mp.start_processes(_worker, args=(workers, _free_port(), backend, case, queue), nprocs=workers,
                           start_method="spawn")
        times = queue.get()
    median = statistics.median(times)
    return {"workers": workers, "device": device, "global_batch": batch, "batch_per_worker": batch // workers,
            "threads_per_worker": threads, "steps": steps, "seconds_per_step": round(median, 4),
            "min_s": round(min(times), 4), "max_s": round(max(times), 4),
            "images_per_s": round(batch / median, 2), "case_wall_s": round(time.perf_counter() - t0, 1)}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Command: `{report['command']}`", "",
             f"{report['machine']['cpu']} ({report['machine']['cpu_cores']} cores), torch {report['machine']['torch']}; "
             f"profile {report['profile']}: Method 1 {json.dumps(report['model_args'])}, global batch "
             f"{report['global_batch']}; 1-minute load average {report['loadavg_before']} before, "
             f"{report['loadavg_after']} after.", "",
             "| workers | threads/worker | batch/worker | img/s | s/step (median) | min s | max s |",
             "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['workers']} | {r['threads_per_worker']} | {r['batch_per_worker']} | {r['images_per_s']} "
                     f"| {r['seconds_per_step']} | {r['min_s']} | {r['max_s']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="mini-cpu")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(HERE / "train_ddp.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))

    import torch

    from facesr.config import load_section
    from facesr.fileio import atomic_write_text

    train = load_section(REPO / "params.yaml", "train", profile=args.profile)
    model_args, batch = dict(train["variants"]["method1"]["model_args"]), int(train["loop"]["batch_size"])
    cores = os.cpu_count() or 1
    report: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]), "profile": args.profile, "model_args": model_args,
        "global_batch": batch, "loadavg_before": round(os.getloadavg()[0], 2),
        "machine": {"cpu": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                                 if line.startswith("model name")), platform.machine()),
                    "cpu_cores": cores, "torch": torch.__version__, "python": platform.python_version()},
        "rows": []}
    for workers in args.workers:
        for threads in ([cores, 1] if workers == 1 and cores > 1 else [max(1, cores // workers)]):
            row = ddp_throughput(model_args, batch, workers, args.device, steps=args.steps, warmup=args.warmup,
                                 threads=threads)
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    report["loadavg_after"] = round(os.getloadavg()[0], 2)
    out = Path(args.out)
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
