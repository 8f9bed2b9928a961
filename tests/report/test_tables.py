"""Report tables that need no images: the ablation table and the training-time column."""

from facesr.report.build import ablation_rows, table_rows, train_seconds
from facesr.report.document import Document, Section, to_markdown
from facesr.results import Comparison, ModelScores, SeedSpread

SUMMARY = {m: ModelScores(metrics, n_images=25) for m, metrics in {
    "bicubic": {"psnr": 22.0, "ssim": 0.59, "lpips": 0.53},
    "method1": {"psnr": 24.20, "ssim": 0.700, "lpips": 0.26},
    "method1_noprior": {"psnr": 24.05, "ssim": 0.695, "lpips": 0.27},
    "srresnet_wallclock": {"psnr": 24.31, "ssim": 0.702, "lpips": 0.25},
}.items()}


def test_ablation_rows_compare_every_extra_model_with_method1(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "method1.csv").write_text("step,loss,train_s\n10,1.0,30.0\n20,0.5,61.5\n")
    (tmp_path / "train" / "method1_noprior.csv").write_text("step,loss,train_s\n10,1.0,24.0\n20,0.5,\n")
    seconds = train_seconds({"train": tmp_path / "train", "gan": tmp_path / "missing"})
    assert seconds == {"method1": 61.5, "method1_noprior": 24.0}

    ablation = ablation_rows(SUMMARY, seconds)
    assert ablation.header[4] == "ΔPSNR vs method1"
    assert ablation.rows == [
        ["method1", "24.20", "0.7000", "0.2600", "-", "-", "1.0"],
        ["method1_noprior", "24.05", "0.6950", "0.2700", "-0.15", "-0.0050", "0.4"],
        ["srresnet_wallclock", "24.31", "0.7020", "0.2500", "+0.11", "+0.0020", "-"],
    ]
    # Table 4.1 keeps the thesis' rows only when the caller passes them; the markdown gets both tables
    main = table_rows({m: SUMMARY[m] for m in ("bicubic", "method1")})
    md = to_markdown(Document("t", [Section("Table 4.1", [main]), Section("Ablations and extra trials", [ablation])]))
    assert "## Ablations and extra trials" in md and "| method1_noprior | 24.05 |" in md
    assert "| **24.20** |" in md  # the best PSNR of Table 4.1 in bold


def test_no_extra_models_no_ablation_table():
    assert ablation_rows({m: SUMMARY[m] for m in ("bicubic", "method1")}, {}) is None


def _comparison(mean, lo, hi):
    return {"mean_diff": mean, "ci95": [lo, hi], "p_value": 0.01, "n": 25}


def test_vs_srresnet_column_with_interval_and_mark(tmp_path):
    import json

    from facesr.report.build import comparison_rows, read_eval

    summary = {m: {"psnr": 24.0, "ssim": 0.7, "lpips": 0.2, "psnr_y": 25.0, "ssim_y": 0.72, "n_images": 25}
               for m in ("bicubic", "srresnet", "method1")}
    same = {"mean_diff": 0.0, "ci95": [0.0, 0.0], "p_value": 1.0, "n": 25}
    comparisons = {
        "srresnet-bicubic": {k: _comparison(3.0, 2.5, 3.5) for k in ("psnr", "ssim", "lpips", "psnr_y", "ssim_y")},
        "method1-bicubic": {k: same for k in ("psnr", "ssim", "lpips", "psnr_y", "ssim_y")},
        "method1-srresnet": {"psnr": _comparison(0.19, 0.12, 0.26), "ssim": _comparison(0.0029, -0.0004, 0.006),
                             "lpips": same, "psnr_y": same, "ssim_y": same},
    }
    (tmp_path / "eval.json").write_text(json.dumps(summary | {"comparisons": comparisons}))
    scores = read_eval(tmp_path / "eval.json")
    read, read_comparisons = scores.models, scores.comparisons
    assert list(read) == ["bicubic", "srresnet", "method1"]  # the reserved key is not a model
    assert read["method1"] == ModelScores({k: v for k, v in summary["method1"].items() if k != "n_images"}, 25)
    assert read_comparisons["method1-srresnet"]["psnr"] == Comparison(0.19, (0.12, 0.26), 0.01, 25)
    assert {p: {k: vars(c) | {"ci95": list(c.ci95)} for k, c in m.items()} for p, m in read_comparisons.items()} \
        == comparisons
    assert scores.seeds == {}

    main = table_rows(read, read_comparisons)
    assert main.header[-1] == "vs SRResNet"
    column = {row[0]: row[-1] for row in main.rows}
    assert column == {"Bicubic": "-", "SRResNet": "-", "Method 1": "+0.19 [+0.12, +0.26]*"}

    paired = comparison_rows(read, read_comparisons)
    assert paired.rows == [["Method 1", "+0.19 [+0.12, +0.26]*", "+0.0029 [-0.0004, +0.0060]",
                            "+0.0000 [+0.0000, +0.0000]", "+0.00 [+0.00, +0.00]", "+0.0000 [+0.0000, +0.0000]", "25"]]

    # Without SRResNet (or without comparisons) there is no column and no paired table.
    no_srresnet = {m: read[m] for m in ("bicubic", "method1")}
    assert "vs SRResNet" not in table_rows(no_srresnet, read_comparisons).header
    assert comparison_rows(no_srresnet, read_comparisons) is None
    assert "vs SRResNet" not in table_rows(read).header


def test_seed_rows_show_mean_and_sd():
    from facesr.report.build import seed_rows

    spread = {k: SeedSpread(mean=24.213, sd=0.0512, n_seeds=3) for k in ("psnr", "ssim", "lpips", "psnr_y", "ssim_y")}
    table = seed_rows({"method1": spread})
    assert table.header[0] == "Method" and table.header[-1] == "seeds"
    assert table.rows == [["Method 1", "24.21 ± 0.05", "24.2130 ± 0.0512", "24.2130 ± 0.0512", "24.21 ± 0.05",
                           "24.2130 ± 0.0512", "3"]]
    assert seed_rows({}) is None
