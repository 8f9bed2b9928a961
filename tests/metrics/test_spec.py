"""The metric spec: the one list evaluate, the report and `facesr score` read."""

from __future__ import annotations

import subprocess
import sys

from facesr.metrics.spec import HEADLINE, HEADLINE_NAMES, METRICS, SCORED_NAMES, fmt, metric


def test_headline_order_and_directions():
    # eval_per_image.csv's column order comes from here: the demo's CSV must not change.
    assert HEADLINE_NAMES == ("psnr", "ssim", "lpips", "psnr_y", "ssim_y")
    assert [m.name for m in METRICS.values() if m.lower_is_better] == ["lpips"]
    assert SCORED_NAMES == (*HEADLINE_NAMES, "sharpness")


def test_formats():
    assert fmt("psnr", 24.6649) == "24.66" and fmt("ssim", 0.72301) == "0.7230"
    assert fmt("psnr_eyes", 17.016) == "17.02"  # a region PSNR formats like psnr
    assert fmt("parsing_miou", 0.5) == "0.5000" and fmt("unknown_key", 1.0) == "1.0000"
    assert fmt("psnr", 0.19, signed=True) == "+0.19" and fmt("lpips", -0.0097, signed=True) == "-0.0097"
    assert fmt("psnr", None) == fmt("psnr", float("nan")) == fmt("psnr", float("inf")) == "-"
    assert metric("psnr_eyes").label == "psnr_eyes"


def test_report_and_score_read_the_spec():
    from facesr.metrics.score import COLUMNS
    from facesr.report.build import table_rows
    from facesr.results import ModelScores

    scores = {"psnr": 24.0, "ssim": 0.7, "lpips": 0.2, "psnr_y": 25.0, "ssim_y": 0.72}
    table = table_rows({"method1": ModelScores(scores, n_images=1),
                        "srresnet": ModelScores(scores | {"lpips": 0.1}, n_images=1)})
    assert table.header[1 : 1 + len(HEADLINE)] == [m.label for m in HEADLINE]
    assert table.marks[1][1 + HEADLINE_NAMES.index("lpips")]  # lower is better: SRResNet's 0.1
    assert COLUMNS == list(SCORED_NAMES)


def test_the_spec_and_the_package_load_without_torch():
    code = "import sys, facesr.metrics, facesr.metrics.score; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_compute_metrics_computes_every_spec_entry_with_a_function(monkeypatch):
    import torch

    from facesr.metrics import compute_metrics, psnr
    from facesr.metrics.spec import Metric

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 32, 32, generator=g)
    sr = (hr + 0.05 * torch.randn(2, 3, 32, 32, generator=g)).clamp(0, 1)
    assert list(compute_metrics(sr, hr)) == [m.name for m in METRICS.values() if m.compute]
    # a new entry is all a new metric needs: compute_metrics picks it up from the spec
    monkeypatch.setitem(METRICS, "psnr_again", Metric("psnr_again", "PSNR again", compute=psnr, args=("y",)))
    out = compute_metrics(sr, hr)
    assert list(out)[-1] == "psnr_again"
    assert torch.equal(out["psnr_again"], psnr(sr, hr, "y").double())
