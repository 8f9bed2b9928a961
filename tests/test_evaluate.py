"""The evaluate stage on synthetic faces (tests/conftest.py's prepared_small) with real, tiny, untrained
generators."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from facesr.metrics.spec import RESERVED

TINY_METHOD1 = dict(num_feat=8, num_block=1, prior_feat=8, prior_res_blocks=1, num_hourglass=1, hourglass_depth=2)


def make_generators(root: Path) -> tuple[Path, Path]:
    import torch

    from facesr.models import build_model, save_generator

    torch.manual_seed(0)
    save_generator(root / "models" / "srresnet.pt", build_model("srresnet", num_feat=8, num_block=1))
    save_generator(root / "models" / "method1.pt", build_model("method1", **TINY_METHOD1))
    save_generator(root / "gan" / "method2.pt", build_model("method1", **TINY_METHOD1))
    return root / "models", root / "gan"


def run(params: dict, **paths):
    """stages.evaluate.run on the section `params`, with the RunContext a test evaluation logs under
    ($MLFLOW_TRACKING_URI, tests/conftest.py, wins over its tracking_uri)."""
    from facesr.config import EvaluateParams, Mlflow, RunContext, parse
    from stages.evaluate import run as stage_run

    return stage_run(parse(EvaluateParams, params, "evaluate"), RunContext("test", Mlflow("unused", "facesr-test")),
                     **paths)


def eval_params(**over) -> dict:
    params = {
        "models": ["bicubic", "srresnet", "method1", "method2"],
        "lpips_net": "alex",
        "batch_size": 3,  # not a divisor of the test size: exercises the last partial batch
        "max_images": 0,
        "save_parsing": 2,
        "device": "cpu",
        "precision": "auto",
        "channels_last": "auto",
    }
    params.update(over)
    return params


@pytest.fixture(scope="module")
def evaluated(prepared_small, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    data = prepared_small
    models, gan = make_generators(root)
    out = root / "metrics" / "eval.json"
    summary = run(eval_params(), data=data, models=models, gan=gan, out=out,
                  per_image=root / "metrics" / "per_image.csv", images=root / "evaluation")
    return root, data, summary


def test_eval_json_holds_every_model_and_metric(evaluated):
    root, _, summary = evaluated
    scores = json.loads((root / "metrics" / "eval.json").read_text())
    assert list(scores) == ["bicubic", "srresnet", "method1", "method2", "comparisons"]
    scores = {m: s for m, s in scores.items() if m not in RESERVED}
    for model, s in scores.items():
        for key in ("psnr", "ssim", "lpips", "psnr_y", "ssim_y", "psnr_eyes", "psnr_skin"):
            assert isinstance(s[key], float) and np.isfinite(s[key]), (model, key)
        assert s["n_images"] == 4
    assert "parsing_miou" in scores["method1"] and "parsing_miou" in scores["method2"]
    assert "parsing_miou" not in scores["bicubic"]
    # Synthetic faces, bicubic x8 with the antialiased kernel: ~25 dB / LPIPS ~0.41 (real faces: ~22 dB,
    # SPEC.md). Untrained generators are far off on every headline metric: the scores follow the images.
    assert 22.0 < scores["bicubic"]["psnr"] < 29.0
    assert 0.25 < scores["bicubic"]["lpips"] < 0.6
    for model in ("srresnet", "method1", "method2"):
        assert scores[model]["psnr"] < scores["bicubic"]["psnr"] - 5.0, model
        assert scores[model]["ssim"] < scores["bicubic"]["ssim"] and scores[model]["lpips"] > scores["bicubic"]["lpips"]
    assert summary["mlflow_run_id"]


def test_per_image_csv_agrees_with_means_and_saved_images(evaluated):
    import torch
    from PIL import Image

    from facesr.metrics import psnr

    root, data, _ = evaluated
    scores = {m: s for m, s in json.loads((root / "metrics" / "eval.json").read_text()).items() if m not in RESERVED}
    with open(root / "metrics" / "per_image.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * 4
    for model in scores:
        mine = [float(r["psnr"]) for r in rows if r["model"] == model]
        assert np.mean(mine) == pytest.approx(scores[model]["psnr"], abs=1e-4)
    # The saved PNG is the image that was scored: re-scoring it gives the CSV's number.
    row = next(r for r in rows if r["model"] == "method1")
    sr = np.asarray(Image.open(root / "evaluation" / "method1" / f"{row['id']}.png"))
    hr = np.asarray(Image.open(root / "evaluation" / "hr" / f"{row['id']}.png"))
    to = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    assert float(psnr(to(sr), to(hr))[0]) == pytest.approx(float(row["psnr"]), abs=1e-3)
    with np.load(root / "evaluation" / "method1" / "parsing.npz") as z:
        assert z["parsing"].shape == (2, 11, 128, 128) and z["parsing"].dtype == np.uint8


def test_comparisons_pair_every_model_on_the_test_faces(evaluated):
    from facesr.metrics.paired import paired_difference

    root, _, _ = evaluated
    comparisons = json.loads((root / "metrics" / "eval.json").read_text())["comparisons"]
    assert list(comparisons) == ["srresnet-bicubic", "method1-bicubic", "method1-srresnet", "method2-bicubic",
                                 "method2-srresnet", "method2-method1"]
    with open(root / "metrics" / "per_image.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for pair in comparisons.values():
        assert list(pair) == ["psnr", "ssim", "lpips", "psnr_y", "ssim_y"]
        for c in pair.values():
            assert c["n"] == 4 and c["ci95"][0] <= c["mean_diff"] <= c["ci95"][1]
            assert c["p_value"] is None or 0 <= c["p_value"] <= 1
    # The same numbers as the paired statistics of the per-image CSV (6 significant digits there).
    col = {m: [float(r["psnr"]) for r in rows if r["model"] == m] for m in ("method1", "srresnet")}
    again = paired_difference(col["method1"], col["srresnet"])
    got = comparisons["method1-srresnet"]["psnr"]
    assert got["mean_diff"] == pytest.approx(again["mean_diff"], abs=1e-3)
    assert got["ci95"] == pytest.approx(again["ci95"], abs=1e-3)
    # A mean of differences is the difference of the means (the same faces on both sides).
    scores = json.loads((root / "metrics" / "eval.json").read_text())
    assert got["mean_diff"] == pytest.approx(scores["method1"]["psnr"] - scores["srresnet"]["psnr"], abs=1e-5)


def test_logged_to_mlflow(evaluated):
    import mlflow

    _, _, summary = evaluated
    run = mlflow.get_run(summary["mlflow_run_id"])
    assert run.data.metrics["bicubic.psnr"] == pytest.approx(summary["psnr"]["bicubic"], abs=1e-3)
    assert run.data.tags["dvc_stage"] == "evaluate"
    assert run.data.tags["profile"] == "test"  # the RunContext's profile, passed down to run_tags


def test_missing_generator_names_file_and_keeps_previous_outputs(evaluated):
    from facesr.evaluate import EvaluationError
    root, data, _ = evaluated
    before = (root / "metrics" / "eval.json").read_text()
    with pytest.raises(EvaluationError, match=r"nowhere/method2\.pt"):
        run(eval_params(), data=data, models=root / "models", gan=root / "nowhere",
            out=root / "metrics" / "eval.json", per_image=root / "metrics" / "per_image.csv",
            images=root / "evaluation")
    assert (root / "metrics" / "eval.json").read_text() == before
    assert (root / "evaluation" / "method1").is_dir()
    assert not [p for p in root.iterdir() if p.name.startswith(".evaluation")]


def test_unknown_model_and_smoke_test(evaluated, tmp_path):
    from facesr.evaluate import EvaluationError
    root, data, _ = evaluated
    with pytest.raises(EvaluationError, match=r"esrgan\.pt: generator file for 'esrgan' not found"):
        run(eval_params(models=["bicubic", "esrgan"]), data=data, models=root / "models", gan=root / "gan",
            out=tmp_path / "e.json", per_image=tmp_path / "p.csv", images=tmp_path / "img")
    with pytest.raises(EvaluationError, match=r"'\.\./x' is not a model or variant name"):
        run(eval_params(models=["bicubic", "../x"]), data=data, models=root / "models", gan=root / "gan",
            out=tmp_path / "e.json", per_image=tmp_path / "p.csv", images=tmp_path / "img")
    # what a killed run left beside its outputs is swept at the next start (issue 15)
    stale = [tmp_path / ".img.tmp-4242", tmp_path / ".img.old-4242", tmp_path / ".e.json.tmp-abc"]
    stale[0].mkdir(), stale[1].mkdir(), stale[2].write_text("half")
    run(eval_params(models=["bicubic"], max_images=0), data=data, models=root / "models", gan=root / "gan",
        out=tmp_path / "e.json", per_image=tmp_path / "p.csv", images=tmp_path / "img", smoke_test=True)
    assert json.loads((tmp_path / "e.json").read_text())["bicubic"]["n_images"] == 4
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.json", "img", "p.csv"]


def test_an_extra_train_variant_is_scored_from_its_own_file(evaluated, tmp_path):
    import shutil

    root, data, _ = evaluated
    models = tmp_path / "models"
    shutil.copytree(root / "models", models)
    shutil.copy2(models / "method1.pt", models / "method1_noattn.pt")
    run(eval_params(models=["method1", "method1_noattn"], max_images=2), data=data, models=models,
        gan=root / "gan", out=tmp_path / "e.json", per_image=tmp_path / "p.csv", images=tmp_path / "img")
    scores = json.loads((tmp_path / "e.json").read_text())
    assert scores["method1_noattn"]["psnr"] == scores["method1"]["psnr"]  # the same weights
    # identical models: no difference, a zero-width interval, nothing significant, no error
    for c in scores["comparisons"]["method1_noattn-method1"].values():
        assert c == {"mean_diff": 0.0, "ci95": [0.0, 0.0], "p_value": 1.0, "n": 2}
    assert (tmp_path / "img" / "method1_noattn").is_dir()


def test_cli_reports_bad_params(tmp_path, capsys):
    from stages.evaluate import main

    (tmp_path / "params.yaml").write_text("mlflow: {experiment: facesr-test}\nevaluate:\n  models: [bicubic]\n")
    code = main(["--params", str(tmp_path / "params.yaml"), "--data", "d", "--models", "m", "--gan", "g",
                 "--out", "o.json", "--per-image", "p.csv", "--images", "i"])
    assert code == 2
    assert f"error: {tmp_path / 'params.yaml'}: evaluate: missing key(s) batch_size" in capsys.readouterr().err


def test_every_seed_of_a_variant_is_scored_when_trials_exist(evaluated, tmp_path):
    import shutil

    import torch

    from facesr.models import build_model, save_generator
    root, data, _ = evaluated
    models = tmp_path / "models"
    shutil.copytree(root / "models", models)
    kw = dict(data=data, models=models, gan=root / "gan", images=tmp_path / "img")
    params = eval_params(models=["bicubic", "srresnet", "method1"], max_images=3)
    run(params, out=tmp_path / "before.json", per_image=tmp_path / "before.csv", **kw)

    # One trial of a variant is its exported file again: nothing changes.
    (models / "trials" / "method1").mkdir(parents=True)
    shutil.copy2(models / "method1.pt", models / "trials" / "method1" / "seed0.pt")
    run(params, out=tmp_path / "one.json", per_image=tmp_path / "one.csv", **kw)
    assert (tmp_path / "one.json").read_text() == (tmp_path / "before.json").read_text()
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "before.csv").read_text()

    # Three seeds (the train stage's layout): each scored, rows after the models', mean ± sd in `seeds`.
    for seed in (1, 2):
        torch.manual_seed(seed)
        save_generator(models / "trials" / "method1" / f"seed{seed}.pt", build_model("method1", **TINY_METHOD1))
    run(params, out=tmp_path / "e.json", per_image=tmp_path / "p.csv", **kw)
    before, after = json.loads((tmp_path / "before.json").read_text()), json.loads((tmp_path / "e.json").read_text())
    assert {k: after[k] for k in before} == before  # the models' numbers do not move
    before_csv = (tmp_path / "before.csv").read_text()
    after_csv = (tmp_path / "p.csv").read_text()
    assert after_csv.startswith(before_csv)
    with open(tmp_path / "p.csv", newline="") as fh:
        extra = [r for r in csv.DictReader(fh) if "@" in r["model"]]
    assert [r["model"] for r in extra] == ["method1@seed0"] * 3 + ["method1@seed1"] * 3 + ["method1@seed2"] * 3
    means = [np.mean([float(r["psnr"]) for r in extra if r["model"] == f"method1@seed{s}"]) for s in range(3)]
    assert means[0] == pytest.approx(before["method1"]["psnr"], abs=1e-4)  # seed0 is the exported file
    assert len(set(np.round(means, 4))) == 3
    assert list(after["seeds"]) == ["method1"]
    spread = after["seeds"]["method1"]["psnr"]
    assert spread["n_seeds"] == 3
    assert spread["mean"] == pytest.approx(np.mean(means), abs=1e-4)
    assert spread["sd"] == pytest.approx(np.std(means, ddof=1), abs=1e-4)
    assert not (tmp_path / "img" / "method1@seed1").exists()  # no images kept for the seeds


def test_an_exported_onnx_file_scores_what_its_generator_scores(evaluated, tmp_path, capsys):
    """Issue 25: `--extra-model NAME=FILE.onnx` scores the shipped file in ONNX Runtime beside its .pt
    (PyTorch at fp32 here: auto is bf16 on a CPU with fast bf16, the export is fp32); the table's
    numbers do not move."""
    from facesr.cli import main as cli_main
    from facesr.evaluate import EvaluationError
    from stages.evaluate import parser

    root, data, _ = evaluated
    for name in ("srresnet", "method1"):
        assert cli_main(["export", str(root / "models" / f"{name}.pt"), "-o", str(tmp_path / f"{name}.onnx")]) == 0
    kw = dict(data=data, models=root / "models", gan=root / "gan", per_image=tmp_path / "p.csv",
              images=tmp_path / "img")
    params = eval_params(models=["srresnet", "method1"], precision="fp32", channels_last=False)
    run(params, out=tmp_path / "before.json", **kw)
    extra = parser().parse_args(["--data", "d", "--models", "m", "--gan", "g", "--out", "o", "--per-image", "p",
                                 "--images", "i", "--extra-model", f"srresnet_onnx={tmp_path / 'srresnet.onnx'}",
                                 "--extra-model", f"method1_onnx={tmp_path / 'method1.onnx'}"]).extra_model
    summary = run(params, out=tmp_path / "e.json", extra_models=extra, **kw)
    scores = json.loads((tmp_path / "e.json").read_text())
    before = json.loads((tmp_path / "before.json").read_text())
    assert summary["models"] == ["srresnet", "method1", "srresnet_onnx", "method1_onnx"]
    assert {m: scores[m] for m in ("srresnet", "method1")} == {m: before[m] for m in ("srresnet", "method1")}
    for name in ("srresnet", "method1"):
        assert abs(scores[f"{name}_onnx"]["psnr"] - scores[name]["psnr"]) <= 0.01
        assert scores[f"{name}_onnx"]["lpips"] == pytest.approx(scores[name]["lpips"], abs=1e-3)
    assert scores["method1_onnx"]["parsing_miou"] == pytest.approx(scores["method1"]["parsing_miou"], abs=1e-3)
    assert "method1_onnx-method1" in scores["comparisons"]
    assert (tmp_path / "img" / "method1_onnx" / "parsing.npz").is_file()
    with pytest.raises(EvaluationError, match="already scored"):
        run(params, out=tmp_path / "x.json", extra_models=[f"method1={tmp_path / 'method1.onnx'}"], **kw)
    with pytest.raises(EvaluationError, match="expected NAME=FILE"):
        run(params, out=tmp_path / "x.json", extra_models=[str(tmp_path / "method1.onnx")], **kw)
