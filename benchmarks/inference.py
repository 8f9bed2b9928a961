"""Inference speed: faces/s of each generator at batch 1 and 64, per runtime, on the CPU and on a GPU when present.

Measures `Upscaler.predict` (LR 16x16 -> SR 128x128, the model's forward pass plus the clamp) on
random LR batches with the default (thesis-sized) configs of params-free `build_model(name)`, i.e.
untrained weights of the real architecture: speed does not depend on the weights. Runtimes
(`RUNTIMES`): torch eager fp32, torch fp32 channels_last, torch at precision auto (bf16 autocast +
channels_last where the device does bf16 fast: the torch default), and ONNX Runtime on the model's
`facesr export` file (fp32). Method 2 is Method 1's network (GAN-trained): its speed is method1's.

    .venv/bin/python benchmarks/inference.py                 # writes benchmarks/inference.json
    .venv/bin/python benchmarks/inference.py --smoke-test    # tiny configs, batch 1 and 2, seconds

The markdown table with the machine goes in benchmarks/inference.md by hand from the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

TINY = {"srresnet": {"num_feat": 8, "num_block": 1},
        "method1": {"num_feat": 8, "num_block": 1, "prior_feat": 8, "prior_res_blocks": 1, "num_hourglass": 1,
                    "hourglass_depth": 2}}


# name -> facesr.load keyword arguments
RUNTIMES = {
    "torch-fp32": {"runtime": "torch", "precision": "fp32"},
    "torch-fp32-channels_last": {"runtime": "torch", "precision": "fp32", "channels_last": True},
    "torch-auto": {"runtime": "torch", "precision": "auto"},
    "onnxruntime": {"runtime": "onnx"},
}


def upscaler_for(generator: Path, exported: Path, runtime: str, device: str):
    """The Upscaler of one runtime: the generator file in torch, or its export in ONNX Runtime."""
    from facesr.inference import Upscaler, load
    from facesr.models import load_generator

    kw = RUNTIMES[runtime]
    if kw["runtime"] == "onnx":
        return load(exported, device=device, runtime="onnx")
    if "channels_last" in kw:  # facesr.load has no channels_last switch: the Upscaler has
        model, meta = load_generator(generator, map_location=device)
        return Upscaler(model, device=device, name=meta["model"], precision=kw["precision"],
                        channels_last=kw["channels_last"])
    return load(generator, device=device, runtime="torch", precision=kw["precision"])


def time_model(up, batch: int, *, min_seconds: float, min_reps: int) -> dict:
    import torch

    lr = torch.rand(batch, 3, 16, 16, device=up.device)
    up.predict(lr)  # warm-up: allocator, cudnn autotuning, lazy inits
    if up.device.startswith("cuda"):
        torch.cuda.synchronize()
    times = []
    started = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        up.predict(lr)
        if up.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    return {"batch": batch, "reps": len(times), "median_s": round(median, 5),
            "faces_per_s": round(batch / median, 2)}


def main(argv: list[str] | None = None) -> int:
    import torch

    from facesr.inference.onnx_export import export_onnx
    from facesr.models import build_model, save_generator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["srresnet", "method1"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--runtimes", nargs="+", choices=list(RUNTIMES), default=list(RUNTIMES))
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--min-reps", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    parser.add_argument("--smoke-test", action="store_true", help="tiny configs, batches 1 and 2")
    args = parser.parse_args(argv)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    batches = [1, 2] if args.smoke_test else args.batches
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="facesr-bench-"))
    for name in args.models:
        model = build_model(name, **(TINY[name] if args.smoke_test else {}))
        save_generator(tmp / f"{name}.pt", model)
        export_onnx(tmp / f"{name}.pt", tmp / f"{name}.onnx")
        n_params = sum(p.numel() for p in model.parameters())
        for device in devices:
            for runtime in args.runtimes:
                up = upscaler_for(tmp / f"{name}.pt", tmp / f"{name}.onnx", runtime, device)
                for batch in batches:
                    r = time_model(up, batch, min_seconds=0.2 if args.smoke_test else args.min_seconds,
                                   min_reps=1 if args.smoke_test else args.min_reps)
                    r.update(model=name, device=up.device, runtime=runtime, precision=up.precision.name,
                             params=n_params)
                    results.append(r)
                    print(f"{device:5s} {name:9s} {runtime:25s} batch {batch:3d}: {r['faces_per_s']:8.2f} faces/s "
                          f"(median {r['median_s'] * 1000:.1f} ms over {r['reps']} reps)", flush=True)
    import onnxruntime

    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
               "onnxruntime": onnxruntime.__version__,
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               # other processes share the cores; a high load means the numbers are lower bounds
               "loadavg_1_5_15": [round(v, 2) for v in os.getloadavg()]}
    command = "python benchmarks/inference.py " + " ".join(argv if argv is not None else sys.argv[1:])
    payload = {"benchmark": "inference", "command": command.strip(), "smoke_test": args.smoke_test,
               "machine": machine, "results": results}
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
