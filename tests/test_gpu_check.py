"""benchmarks/gpu_check.sh: its CPU smoke path runs on a Python that lacks what a bare GPU machine lacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# what the first GPU machine does not have (Python, torch, numpy, Pillow and scikit-image only)
ABSENT = ("ray", "mlflow", "prefect", "dvc", "lpips", "yaml", "torchvision", "tqdm")
# None in sys.modules is how Python spells "not installed" to both `import` (ModuleNotFoundError)
# and importlib.util.find_spec (None), which torch uses to probe for optional packages
BLOCKER = f"""
import sys
for name in {ABSENT!r}:
    sys.modules[name] = None
"""


def test_the_cpu_smoke_path_runs_without_the_pipeline_stack(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(site), "FACESR_NO_PROGRESS": "1"}
    out = tmp_path / "out"
    proc = subprocess.run([str(REPO / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--smoke", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    loaded = set(json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("MODULES "))[8:]))
    assert not {m.split(".")[0] for m in loaded} & set(ABSENT)
    assert report["forbidden_imported"] == [] and "torch" in report["modules"]
    rows = report["throughput"]
    assert {r["model"] for r in rows} == {"srresnet", "method1", "discriminator"}
    assert all(r["images_per_s"] > 0 and r["gflop_per_step"] > 0 for r in rows), rows
    assert {(r["precision"], r["channels_last"]) for r in rows} == {("fp32", False), ("bf16", True)}
    train = report["training"]
    from facesr.device import fast_bf16

    assert [r["precision"] for r in train] == ["fp32", "bf16" if fast_bf16("cpu") else "fp32"]  # fp32, then auto
    assert all(r["steps"] == 2 and r["weights_dtype"] == "torch.float32" and r["test_psnr"] > 0 for r in train)
    assert "## Train throughput" in (out / "gpu_check.md").read_text()
    # the multi-GPU DDP case, run by the smoke as 2 gloo workers on the CPU
    assert [(r["workers"], r["global_batch"]) for r in report["ddp"]] == [(1, 2), (2, 4)], report["ddp"]
    assert all(r["images_per_s"] > 0 for r in report["ddp"])


def test_the_gpu_checks_model_sizes_are_the_thesis_profiles():
    """gpu_check.py builds the thesis' models with build_model's defaults (it cannot read YAML)."""
    from facesr.config import load_section
    from facesr.models import build_model

    train = load_section(REPO / "params.yaml", "train", profile="thesis")
    gan = load_section(REPO / "params.yaml", "train_gan", profile="thesis")
    for name in ("srresnet", "method1"):
        defaults = build_model(name).spec["model_args"]
        assert {k: defaults[k] for k in train["variants"][name]["model_args"]} == train["variants"][name]["model_args"]
    disc = build_model("discriminator").spec["model_args"]
    assert {k: disc[k] for k in gan["loop"]["discriminator_args"]} == gan["loop"]["discriminator_args"]
    assert train["loop"]["batch_size"] == 16
