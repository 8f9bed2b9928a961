"""Report tables that need no images: the ablation table and the training-time column."""

from facesr.report.build import _markdown, ablation_rows, table_rows, train_seconds

SUMMARY = {
    "bicubic": {"psnr": 22.0, "ssim": 0.59, "lpips": 0.53},
    "method1": {"psnr": 24.20, "ssim": 0.700, "lpips": 0.26},
    "method1_noprior": {"psnr": 24.05, "ssim": 0.695, "lpips": 0.27},
    "srresnet_wallclock": {"psnr": 24.31, "ssim": 0.702, "lpips": 0.25},
}


def test_ablation_rows_compare_every_extra_model_with_method1(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "method1.csv").write_text("step,loss,train_s\n10,1.0,30.0\n20,0.5,61.5\n")
    (tmp_path / "train" / "method1_noprior.csv").write_text("step,loss,train_s\n10,1.0,24.0\n20,0.5,\n")
    seconds = train_seconds({"train": tmp_path / "train", "gan": tmp_path / "missing"})
    assert seconds == {"method1": 61.5, "method1_noprior": 24.0}

    header, rows = ablation_rows(SUMMARY, seconds)
    assert header[4] == "ΔPSNR vs method1"
    assert rows == [
        ["method1", "24.20", "0.7000", "0.2600", "-", "-", "1.0"],
        ["method1_noprior", "24.05", "0.6950", "0.2700", "-0.15", "-0.0050", "0.4"],
        ["srresnet_wallclock", "24.31", "0.7020", "0.2500", "+0.11", "+0.0020", "-"],
    ]
    # Table 4.1 keeps the thesis' rows only when the caller passes them; the markdown gets both tables
    t_header, t_cells, t_marks = table_rows({m: SUMMARY[m] for m in ("bicubic", "method1")})
    md = _markdown("t", "intro", t_header, t_cells, t_marks, ["Method"], [], [], [], (header, rows))
    assert "## Ablations and extra trials" in md and "| method1_noprior | 24.05 |" in md


def test_no_extra_models_no_ablation_table():
    assert ablation_rows({m: SUMMARY[m] for m in ("bicubic", "method1")}, {}) == ([], [])
