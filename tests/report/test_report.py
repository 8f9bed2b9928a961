"""The report stage: built from a real evaluation of synthetic faces, then opened in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # ~30 s: a real evaluation first, then Chromium

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
REPORT_PARAMS = {
    "title": "facesr test report",
    "grid_faces": 3,
    "worst_faces": 2,
    "worst_by": "method1",
    "crop": [36, 16, 48, 96],
    "crop_faces": 2,
    "parsing_faces": 2,
}


def report_params():
    """REPORT_PARAMS as the report stage gets them (facesr.config.load_report)."""
    from facesr.config import ReportParams, parse

    return parse(ReportParams, REPORT_PARAMS, "report")


@pytest.fixture(scope="module")
def report_dir(prepared_small, tmp_path_factory):
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    from test_evaluate import eval_params, make_generators
    from test_evaluate import run as evaluate

    from stages.report import run as report

    root = tmp_path_factory.mktemp("report")
    data = prepared_small
    models, gan = make_generators(root)
    evaluate(eval_params(), data=data, models=models, gan=gan, out=root / "eval.json",
             per_image=root / "per_image.csv", images=root / "evaluation")
    curves = root / "curves"
    curves.mkdir()
    (curves / "method1.csv").write_text(
        "step,loss,val_psnr\n" + "".join(f"{s},{1.0 / (s + 1):.4f},{20 + s * 0.1:.2f}\n" for s in range(0, 50, 5))
    )
    report(report_params(), eval=root / "eval.json", per_image=root / "per_image.csv", images=root / "evaluation",
           train_curves=curves, gan_curves=root / "no-gan-curves", out=root / "reports")
    return root / "reports"


def test_report_files_and_relative_images(report_dir):
    html = (report_dir / "index.html").read_text()
    md = (report_dir / "report.md").read_text()
    for text in (html, md):
        # The thesis' Table 4.1 numbers sit beside ours.
        for ref in ("20.72", "24.47", "24.66", "23.38", "0.5351", "0.1018"):
            assert ref in text
        for label in ("Bicubic", "SRResNet", "Method 1", "Method 2 (GAN)"):
            assert label in text
        # the paired comparison with SRResNet (issue 18): a column, its legend, a table of every metric
        assert "vs SRResNet" in text and "Paired differences against SRResNet" in text
        assert re.search(r"[+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\]", text)
        assert "With only 4 faces the interval is too narrow" in text  # the fixture's 4 test faces
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert {"img/grid.png", "img/gan_crops.png", "img/worst.png", "img/worst_vs_srresnet.png", "img/parsing.png",
            "img/curves_train_method1.png"} <= set(srcs)
    for src in srcs:
        assert not src.startswith(("/", "http")), "the report must open from disk"
        assert (report_dir / src).is_file()
    assert set(re.findall(r"\]\((img/[^)]+)\)", md)) == set(srcs)


def test_missing_eval_is_a_clear_error(tmp_path):
    from facesr.report import ReportError
    from stages.report import run as report

    with pytest.raises(ReportError, match=r"eval\.json: evaluation metrics not found"):
        report(report_params(), eval=tmp_path / "eval.json", per_image=tmp_path / "p.csv", images=tmp_path,
               train_curves=tmp_path, gan_curves=tmp_path, out=tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "no Chromium found (looked for " + ", ".join(CHROMIUM_NAMES) + "): install it with "
        "`apt-get install -y chromium` (`make test` does so when run as root)"
    )


def screenshot(index: Path, out: Path, tmp: Path, height: int) -> np.ndarray:
    from PIL import Image

    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars", f"--user-data-dir={tmp / 'chromium-profile'}", f"--window-size=1200,{height}",
        f"--screenshot={out}", index.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.is_file(), f"Chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return np.asarray(Image.open(out).convert("RGB"))


def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    shot = screenshot(report_dir / "index.html", tmp_path / "report.png", tmp_path, 2600)
    assert shot.shape[0] >= 2000 and shot.shape[1] >= 1100
    # The table: dark text on a light page in the top part.
    top = shot[:600]
    assert (top.mean(axis=2) < 80).mean() > 0.005
    # The face grids: photographs give tens of thousands of colours; a page of text gives a few hundred.
    colours = np.unique(shot.reshape(-1, 3), axis=0).shape[0]
    assert colours > 5000, f"only {colours} colours: the grid images did not render"
    # Control: the same page without its images is text only, so the colour count above is the images'.
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "index.html").write_text(re.sub(r"<img [^>]*>", "", (report_dir / "index.html").read_text()))
    plain = screenshot(bare / "index.html", tmp_path / "bare.png", tmp_path, 2600)
    assert np.unique(plain.reshape(-1, 3), axis=0).shape[0] < colours / 5
    keep = os.environ.get("FACESR_KEEP_SCREENSHOT")
    if keep:  # to look at it by hand: FACESR_KEEP_SCREENSHOT=/tmp/report.png pytest tests/report
        shutil.copy(tmp_path / "report.png", keep)
