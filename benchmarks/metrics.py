"""Benchmark: batched torch SSIM/PSNR (facesr.metrics) vs skimage on real bicubic x8 face pairs.

    .venv/bin/python benchmarks/metrics.py --n 1000 --out benchmarks/metrics.json

Pairs: the first N faces of the mini set (faces repeat when N exceeds it), HR = PIL BICUBIC to 128,
SR = HR down to 16 and up again with PIL BICUBIC. Reports wall and CPU time (process_time, all threads) of each implementation, the
largest absolute difference per metric and protocol, LPIPS-alex time and the mean scores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MINI = Path(os.environ.get("FACESR_MINI_DIR", REPO.parent / "shared" / "data" / "celebamask-hq-mini"))
SK = dict(data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def load_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    files = sorted((MINI / "CelebA-HQ-img").glob("*.jpg"), key=lambda p: int(p.stem))
    if not files:
        raise SystemExit(f"no faces under {MINI}/CelebA-HQ-img (set FACESR_MINI_DIR)")
    sr, hr = [], []
    for i in range(min(n, len(files))):
        with Image.open(files[i]) as im:
            h = im.convert("RGB").resize((128, 128), Image.BICUBIC)
        hr.append(np.asarray(h))
        sr.append(np.asarray(h.resize((16, 16), Image.BICUBIC).resize((128, 128), Image.BICUBIC)))
    reps = -(-n // len(hr))
    return np.stack((sr * reps)[:n]), np.stack((hr * reps)[:n])


def y_numpy(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float64)
    return (16.0 + (65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]) / 255.0)[8:-8, 8:-8]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = ap.parse_args()

    import skimage
    import torch
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from facesr.metrics import LPIPS, psnr, ssim

    torch.set_num_threads(args.threads)
    sr, hr = load_pairs(args.n)
    to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
    S, H = to_t(sr), to_t(hr)

    res: dict = {"n_pairs": args.n, "size": "128x128x3", "batch": args.batch}
    for protocol in ("rgb", "y"):
        t0, c0 = time.perf_counter(), time.process_time()
        if protocol == "rgb":
            ref_s = np.array([structural_similarity(h, s, channel_axis=-1, **SK) for s, h in zip(sr, hr)])
        else:
            ref_s = np.array([structural_similarity(y_numpy(h), y_numpy(s), **SK) for s, h in zip(sr, hr)])
        t_sk, c_sk = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        ours_s = torch.cat([ssim(S[i : i + args.batch], H[i : i + args.batch], protocol)
                            for i in range(0, args.n, args.batch)]).numpy()
        t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
        if protocol == "rgb":
            ref_p = np.array([peak_signal_noise_ratio(h, s, data_range=255) for s, h in zip(sr, hr)])
        else:
            ref_p = np.array([peak_signal_noise_ratio(y_numpy(h), y_numpy(s), data_range=255) for s, h in zip(sr, hr)])
        ours_p = psnr(S, H, protocol).numpy()
        res[protocol] = {
            "ssim_skimage_s": round(t_sk, 3), "ssim_torch_s": round(t_ours, 3),
            "ssim_skimage_cpu_s": round(c_sk, 3), "ssim_torch_cpu_s": round(c_ours, 3),
            "ssim_max_abs_diff": float(np.abs(ours_s - ref_s).max()),
            "psnr_max_abs_diff": float(np.abs(ours_p - ref_p).max()),
            "ssim_mean": float(ours_s.mean()), "psnr_mean": float(ours_p.mean()),
        }
    lp = LPIPS("alex", batch_size=50)
    t0, c0 = time.perf_counter(), time.process_time()
    d = torch.cat([lp(S[i : i + args.batch], H[i : i + args.batch]) for i in range(0, args.n, args.batch)])
    res["lpips_alex"] = {"seconds": round(time.perf_counter() - t0, 3), "cpu_s": round(time.process_time() - c0, 3),
                         "mean": float(d.mean())}
    res["load_avg_1min"] = os.getloadavg()[0]  # other processes on the box inflate wall times
    res["machine"] = {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": args.threads,
        "gpu": "none", "python": platform.python_version(), "torch": torch.__version__,
        "skimage": skimage.__version__,
    }
    print(json.dumps(res, indent=2))
    if args.out:
        args.out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
