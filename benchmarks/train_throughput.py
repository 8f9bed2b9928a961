"""Training-step throughput (img/s, GFLOP/s) and peak memory per model, profile size and precision.

    .venv/bin/python benchmarks/train_throughput.py [--profiles demo mini-cpu thesis]
        [--models srresnet method1 gan discriminator] [--modes fp32 fp32+cl bf16 bf16+cl]
        [--compile] [--steps 4] [--warmup 1] [--bf16-steps N] [--out benchmarks/train_throughput.json]

One step (benchmarks/train_step.py) = forward under the precision's autocast, the loss on fp32
outputs, backward, RMSProp, as facesr.train.loop runs it. The sizes are each profile's own:
params.yaml merged with profiles/<name>.yaml (train.variants' model_args and train.loop.batch_size
for the generators; train_gan's discriminator_args and batch_size for `gan` and `discriminator`).
Modes: fp32, fp32 + channels_last, bf16 autocast, bf16 autocast + channels_last; `--compile` adds
each mode again under torch.compile; CUDA, when present, gets the same cases. Each case runs in a
fresh subprocess so its peak memory is its own (CPU: peak RSS; CUDA: max_memory_allocated).
FLOPs of a step are counted once per (model, profile) with torch.utils.flop_counter (convolutions
and matmuls, forward + backward). The JSON holds the machine's flags (CPU capability, AVX512_BF16,
AMX, threads, torch) and every row; the markdown table (with the command) is printed and written
beside it, benchmarks/train_throughput.md by default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODES = {"fp32": ("fp32", False), "fp32+cl": ("fp32", True), "bf16": ("bf16", False), "bf16+cl": ("bf16", True)}


def profile_sizes(profile: str, params: Path = REPO / "params.yaml") -> dict[str, dict]:
    """model -> {model_args, disc_args, batch} at `profile`'s sizes (read, not copied)."""
    from facesr.config import load_section

    train = load_section(params, "train", profile=profile)
    gan = load_section(params, "train_gan", profile=profile)
    disc = dict(gan["loop"]["discriminator_args"])
    sizes = {name: {"model_args": dict(train["variants"][name]["model_args"]), "disc_args": disc,
                    "batch": int(train["loop"]["batch_size"])} for name in ("srresnet", "method1")}
    for name in ("gan", "discriminator"):
        sizes[name] = {"model_args": sizes["method1"]["model_args"], "disc_args": disc,
                       "batch": int(gan["loop"]["batch_size"])}
    return sizes


def run_case(case: dict) -> dict:
    """Runs in the case's own process (see --case)."""
    import torch

    sys.path.insert(0, str(HERE))
    from train_step import measure

    if case.get("threads"):
        torch.set_num_threads(int(case["threads"]))
    row = measure(case["model"], case["model_args"], case["disc_args"], case["batch"], case["device"],
                  case["precision"], case["channels_last"], case["compile"], steps=case["steps"],
                  warmup=case["warmup"], flops=case.get("flops"))
    peak = (torch.cuda.max_memory_allocated() if case["device"].startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {**row, "profile": case["profile"], "peak_memory_mib": round(peak / 2**20, 1),
            "threads": torch.get_num_threads()}


def machine() -> dict:
    import torch

    from facesr.device import cpu_flags, fast_bf16

    info = {"cpu": platform.processor() or platform.machine(), "cpu_cores": os.cpu_count(),
            **cpu_flags(), "cpu_fast_bf16": fast_bf16("cpu"), "python": platform.python_version(),
            "gpu": None}
    try:
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if torch.cuda.is_available():
        info["gpu"] = f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
        info["cuda_fast_bf16"] = fast_bf16("cuda")
    return info


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cpu_cores']} cores, CPU capability {m['cpu_capability']}, "
             f"AVX512_BF16 {m['avx512_bf16']}, AMX {m['amx_tile']}, {m['threads']} threads, torch {m['torch']}"
             + (f", GPU {m['gpu']}" if m["gpu"] else ", no GPU") + f"; load average {report['load_before']} "
             f"before, {report['load_after']} after.", "",
             f"Command: `{report['command']}`", "",
             "| profile | model | device | mode | compile | batch | img/s | s/step (median) | s/step (min) | GFLOP/step "
             "| GFLOP/s | x fp32 | peak MiB |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    base = {(r["profile"], r["model"], r["device"]): r["images_per_s"] for r in report["results"]
            if "error" not in r and r["precision"] == "fp32" and not r["channels_last"] and not r["compile"]}
    for r in report["results"]:
        mode = r["mode"]
        if "error" in r:
            lines.append(f"| {r['profile']} | {r['model']} | {r['device']} | {mode} | {r['compile']} | | failed: "
                         f"{r['error']} | | | | | | |")
            continue
        ref = base.get((r["profile"], r["model"], r["device"]))
        speed = f"{r['images_per_s'] / ref:.2f}" if ref else ""
        lines.append(f"| {r['profile']} | {r['model']} | {r['device']} | {mode} | {r['compile']} | {r['batch']} "
                     f"| {r['images_per_s']} | {r['seconds_per_step']} | {r['min_s']} | {r.get('gflop_per_step', '')} "
                     f"| {r.get('gflop_per_s', '')} | {speed} | {r['peak_memory_mib']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=["demo", "mini-cpu", "thesis"])
    parser.add_argument("--models", nargs="+", default=["srresnet", "method1", "gan", "discriminator"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--bf16-models", nargs="+", default=None,
                        help="run the bf16 modes for these models only (emulated bf16 is slow on some CPUs)")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--compile", action="store_true", help="also each mode under torch.compile")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--bf16-steps", type=int, default=None, help="timed steps of the bf16 modes (default --steps)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default=str(HERE / "train_throughput.json"))
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case as JSON
    args = parser.parse_args(argv)

    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return 0

    import torch

    from facesr.fileio import atomic_write_text

    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    load_before = round(os.getloadavg()[0], 2)
    results = []
    for profile in args.profiles:
        sizes = profile_sizes(profile)
        for model in args.models:
            flops = None
            for device in devices:
                for mode in args.modes:
                    for compile_ in ([False, True] if args.compile else [False]):
                        precision, channels_last = MODES[mode]
                        if precision == "bf16" and args.bf16_models is not None and model not in args.bf16_models:
                            continue
                        steps = args.bf16_steps if (precision == "bf16" and args.bf16_steps) else args.steps
                        case = {"profile": profile, "model": model, **sizes[model], "device": device,
                                "precision": precision, "channels_last": channels_last, "compile": compile_,
                                "steps": steps, "warmup": args.warmup, "flops": flops, "threads": args.threads}
                        t0 = time.perf_counter()
                        proc = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)],
                                              capture_output=True, text=True, cwd=REPO)
                        if proc.returncode != 0:
                            tail = proc.stderr.strip().splitlines()
                            print(f"{profile} {model} {device} {mode}: failed\n{proc.stderr[-1500:]}", file=sys.stderr)
                            results.append({"profile": profile, "model": model, "device": device, "mode": mode,
                                            "compile": compile_, "error": tail[-1] if tail else "failed"})
                            continue
                        row = json.loads(proc.stdout.strip().splitlines()[-1])
                        row["mode"], row["case_wall_s"] = mode, round(time.perf_counter() - t0, 1)
                        flops = flops or (int(row["gflop_per_step"] * 1e9) if "gflop_per_step" in row else None)
                        results.append(row)
                        print(json.dumps(row), flush=True)
    report = {"machine": machine(), "command": "python " + " ".join([os.path.relpath(__file__, REPO), *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_before": load_before,
              "load_after": round(os.getloadavg()[0], 2), "results": results}
    out = Path(args.out)
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    atomic_write_text(out.with_suffix(".md"), table)
    print("\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
