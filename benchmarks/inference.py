"""Inference speed: faces/s of each generator at batch 1 and 64, on the CPU and on a GPU when present.

Measures `Upscaler.predict` (LR 16x16 -> SR 128x128, the model's forward pass plus the clamp) on
random LR batches with the default (thesis-sized) configs of params-free `build_model(name)`, i.e.
untrained weights of the real architecture: speed does not depend on the weights.

    .venv/bin/python benchmarks/inference.py                 # writes benchmarks/inference.json
    .venv/bin/python benchmarks/inference.py --smoke-test    # tiny configs, batch 1 and 2, seconds

The markdown table with the machine goes in benchmarks/inference.md by hand from the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

TINY = {"srresnet": {"num_feat": 8, "num_block": 1},
        "method1": {"num_feat": 8, "num_block": 1, "prior_feat": 8, "prior_res_blocks": 1, "num_hourglass": 1,
                    "hourglass_depth": 2}}


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

    from facesr.inference import load
    from facesr.models import build_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["srresnet", "method1"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--min-reps", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    parser.add_argument("--smoke-test", action="store_true", help="tiny configs, batches 1 and 2")
    args = parser.parse_args(argv)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    batches = [1, 2] if args.smoke_test else args.batches
    results = []
    for device in devices:
        for name in args.models:
            model = build_model(name, **(TINY[name] if args.smoke_test else {}))
            n_params = sum(p.numel() for p in model.parameters())
            up = load(model, device=device)
            for batch in batches:
                r = time_model(up, batch, min_seconds=0.2 if args.smoke_test else args.min_seconds,
                               min_reps=1 if args.smoke_test else args.min_reps)
                r.update(model=name, device=device, params=n_params)
                results.append(r)
                print(f"{device:5s} {name:9s} batch {batch:3d}: {r['faces_per_s']:8.2f} faces/s "
                      f"(median {r['median_s'] * 1000:.1f} ms over {r['reps']} reps)", flush=True)
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               # other processes share the cores; a high load means the numbers are lower bounds
               "loadavg_1_5_15": [round(v, 2) for v in os.getloadavg()]}
    payload = {"benchmark": "inference", "smoke_test": args.smoke_test, "machine": machine, "results": results}
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
