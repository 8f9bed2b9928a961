#!/usr/bin/env bash
# The first-GPU-machine check (benchmarks/gpu_check.py): thesis-size CUDA train throughput (fp32,
# bf16 + channels_last, with and without torch.compile) and a short Method 1 training on synthetic
# faces, in under 8 minutes, on a machine as it comes (Python, torch with CUDA, numpy, Pillow).
#   benchmarks/gpu_check.sh [--out DIR] [--device cuda] [--budget-s 420]    # DIR default: $OUT, else benchmarks/gpu_check_out
#   benchmarks/gpu_check.sh --device cpu --smoke --out /tmp/gpu-smoke       # what the test suite runs
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
# the hard stop leaves the script's own budget (420 s) room to write its results
exec timeout --signal=TERM --kill-after=10 470 env PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" \
    "$python" "$repo/benchmarks/gpu_check.py" "$@"
