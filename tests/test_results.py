"""facesr.results: the typed metrics JSON of train, train_gan and evaluate, read and written byte for byte.

The fixtures are the real files of a full run (docs/results/mini-cpu-seeds: three seeds, so eval.json
has `comparisons` and `seeds`), written by the stages before these types existed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facesr import evaluate as ev
from facesr.metrics.spec import HEADLINE_NAMES
from facesr.results import (
    Comparison,
    EvalSummary,
    ModelScores,
    ResultsError,
    SeedSpread,
    TrainSummary,
    TrialEntry,
    VariantTrial,
)

RUN = Path(__file__).resolve().parents[1] / "docs" / "results" / "mini-cpu-seeds"


@pytest.mark.parametrize(("name", "kind"), [("eval.json", EvalSummary), ("train.json", TrainSummary),
                                            ("train_gan.json", TrainSummary)])
def test_a_real_file_reads_and_writes_back_byte_for_byte(tmp_path, name, kind):
    read = kind.read(RUN / name)
    read.write(tmp_path / name)
    assert (tmp_path / name).read_bytes() == (RUN / name).read_bytes()
    assert kind.read(tmp_path / name) == read


def test_eval_json_is_typed_as_read():
    scores = EvalSummary.read(RUN / "eval.json")
    assert list(scores.models) == ["bicubic", "srresnet", "method1", "method2"]  # the file's order
    method1 = scores.models["method1"]
    assert method1.n_images == 100 and method1.metrics["psnr"] == 23.527735 and "n_images" not in method1.metrics
    assert list(method1.metrics)[:4] == ["psnr", "ssim", "psnr_y", "ssim_y"]
    c = scores.comparisons["method1-srresnet"]["psnr"]
    assert isinstance(c, Comparison) and isinstance(c.ci95, tuple) and len(c.ci95) == 2 and c.n == 100
    assert c.significant == (c.ci95[0] > 0 or c.ci95[1] < 0)
    assert set(scores.seeds) == {"srresnet", "method1", "method2"}
    assert scores.seeds["method2"]["lpips"] == SeedSpread(mean=0.26076, sd=0.00128, n_seeds=3)


def test_train_json_is_typed_as_read():
    train = TrainSummary.read(RUN / "train.json")
    assert train.stage == "train" and train.smoke_test is False and train.select.metric == "val_psnr"
    assert len(train.trials) == 6 and all(isinstance(t, TrialEntry) for t in train.trials)
    method1 = train.variants["method1"]
    assert method1.exported_trial == "seed2"
    (exported,) = [t for t in method1.trials if t.exported]
    assert isinstance(exported, VariantTrial) and exported.name == "seed2" and exported.run == method1.trial
    assert exported.point == {"lr": 0.00025, "seed": 2} and exported.file == "trials/method1/seed2.pt"
    # what the train stage returns (one JSON line on stdout) is the file's content
    assert train.to_dict() == json.loads((RUN / "train.json").read_text())


def _rows(models, faces=6, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for m in models:
        for i in range(faces):
            row = {"model": m, "id": 10 + i, **{k: float(rng.normal(20.0, 2.0)) for k in HEADLINE_NAMES}}
            row["psnr_eyes"] = float("nan") if i == 0 else float(rng.normal(18.0, 1.0))
            rows.append(row)
    return rows


def test_the_evaluate_writer_path_gives_the_eval_json_format():
    """summary_json as stages/evaluate.py calls it: means, comparisons from the per-image rows, seeds."""
    models = ["bicubic", "srresnet", "method1"]
    rows = _rows(models)
    summary = {m: {**{k: float(np.nanmean([r[k] for r in rows if r["model"] == m]))
                      for k in (*HEADLINE_NAMES, "psnr_eyes")}, "parsing_miou": None, "n_images": 6}
               for m in models}
    trials = {"method1": {"seed0": Path("seed0.pt"), "seed1": Path("seed1.pt")}}
    seed_means = {"method1@seed0": summary["method1"], "method1@seed1": summary["srresnet"]}
    text = ev.summary_json(summary, ev.comparisons(rows, models), ev.seed_spread(trials, seed_means))

    data = json.loads(text)
    assert text == json.dumps(data, indent=2) + "\n"  # indent 2, insertion order, one trailing newline
    assert list(data) == [*models, "comparisons", "seeds"]
    assert list(data["method1"]) == [*HEADLINE_NAMES, "psnr_eyes", "parsing_miou", "n_images"]
    assert data["method1"]["parsing_miou"] is None and data["method1"]["n_images"] == 6
    assert data["method1"]["psnr"] == round(summary["method1"]["psnr"], 6) != summary["method1"]["psnr"]
    assert list(data["comparisons"]) == ["srresnet-bicubic", "method1-bicubic", "method1-srresnet"]
    c = data["comparisons"]["method1-srresnet"]["psnr"]
    assert list(c) == ["mean_diff", "ci95", "p_value", "n"] and c["n"] == 6
    exact = ev.comparisons(rows, models)["method1-srresnet"]["psnr"]
    assert c["p_value"] == exact.p_value and c["mean_diff"] == round(exact.mean_diff, 6)  # p-values unrounded
    assert c["ci95"] == [round(v, 6) for v in exact.ci95]
    assert list(data["seeds"]["method1"]["psnr"]) == ["mean", "sd", "n_seeds"]
    assert data["seeds"]["method1"]["psnr"]["n_seeds"] == 2
    assert EvalSummary.from_dict(data).to_json() == text


def test_comparisons_and_seeds_are_left_out_as_the_evaluate_stage_leaves_them():
    summary = {"bicubic": {**dict.fromkeys(HEADLINE_NAMES, 1.25), "n_images": 1}}
    # one model: no pair, but the key is there (the stage always passes the comparisons); no seeds
    text = ev.summary_json(summary, ev.comparisons(_rows(["bicubic"]), ["bicubic"]), ev.seed_spread({}, {}))
    assert list(json.loads(text)) == ["bicubic", "comparisons"] and '"comparisons": {}' in text
    assert EvalSummary.from_dict(json.loads(text)).to_json() == text
    bare = ev.summary_json(summary)
    assert list(json.loads(bare)) == ["bicubic"]
    assert EvalSummary.from_dict(json.loads(bare)).to_json() == bare


def test_numbers_are_kept_as_written(tmp_path):
    """An integer stays one (20, not 20.0): a file read and written again keeps its bytes."""
    doc = {"bicubic": {**dict.fromkeys(HEADLINE_NAMES, 20), "psnr_eyes": None, "n_images": 3}}
    text = json.dumps(doc, indent=2) + "\n"
    (tmp_path / "eval.json").write_text(text)
    assert EvalSummary.read(tmp_path / "eval.json").to_json() == text


def test_trial_entry_lists_every_field_of_a_trial_result():
    """The driver's TrialEntry holds exactly what a TrialResult reports (a new field must be added here)."""
    from facesr.train.driver import trial_entry
    from facesr.train.trials import TrialResult

    result = TrialResult(name="method1-abc", variant="method1", fingerprint="abcdef", mlflow_run_id="r1",
                         metrics={"val_psnr": 23.5}, step=8, resumed_from=2, train_s=12.5, node_id="n1",
                         files=Path("unused"))
    assert vars(trial_entry(result)) == result.summary()


def _broken(tmp_path: Path, name: str, edit) -> Path:
    data = json.loads((RUN / name).read_text())
    edit(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["method1"].pop("n_images"), r"eval\.json: method1: missing n_images"),
    (lambda d: d["srresnet"].pop("lpips"), r"eval\.json: srresnet: missing lpips"),
    (lambda d: d["bicubic"].update(psnr="21.9"), r"eval\.json: bicubic\.psnr: expected a number, got '21\.9'"),
    (lambda d: d["bicubic"].update(n_images=True), r"eval\.json: bicubic\.n_images: expected an integer"),
    (lambda d: d.update(method2=[1, 2]), r"eval\.json: method2: expected a mapping"),
    (lambda d: d["comparisons"]["method1-srresnet"]["psnr"].update(ci95=[1.0]),
     r"eval\.json: comparisons\.method1-srresnet\.psnr\.ci95: expected a list of 2"),
    (lambda d: d["comparisons"]["method1-srresnet"]["ssim"].pop("p_value"),
     r"eval\.json: comparisons\.method1-srresnet\.ssim: missing key\(s\) p_value"),
    (lambda d: d["seeds"]["method1"]["psnr"].update(median=1.0),
     r"eval\.json: seeds\.method1\.psnr: unknown key\(s\) median"),
    (lambda d: [d.pop(m) for m in ("bicubic", "srresnet", "method1", "method2")], r"eval\.json: no model in it"),
])
def test_an_eval_json_of_another_shape_names_the_file_and_the_key(tmp_path, edit, message):
    with pytest.raises(ResultsError, match=message):
        EvalSummary.read(_broken(tmp_path, "eval.json", edit))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.pop("stage"), r"train\.json: missing key\(s\) stage"),
    (lambda d: d.update(extra=1), r"train\.json: unknown key\(s\) extra"),
    (lambda d: d["trials"][2].update(step="800"), r"train\.json: trials\[2\]\.step: expected an integer, got '800'"),
    (lambda d: d["variants"]["method1"]["trials"][0].update(exported="yes"),
     r"train\.json: variants\.method1\.trials\[0\]\.exported: expected a boolean"),
    (lambda d: d.update(identity=None), r"train\.json: identity: expected a mapping with keys data, init, code"),
])
def test_a_train_json_of_another_shape_names_the_file_and_the_key(tmp_path, edit, message):
    with pytest.raises(ResultsError, match=message):
        TrainSummary.read(_broken(tmp_path, "train.json", edit))


def test_a_missing_or_unparsable_file_names_itself(tmp_path):
    with pytest.raises(ResultsError, match=r"eval\.json: not found"):
        EvalSummary.read(tmp_path / "eval.json")
    (tmp_path / "train.json").write_text("{not json")
    with pytest.raises(ResultsError, match=r"train\.json: not valid JSON"):
        TrainSummary.read(tmp_path / "train.json")
    (tmp_path / "eval.json").write_text("[1, 2]")
    with pytest.raises(ResultsError, match=r"eval\.json: expected \{model"):
        EvalSummary.read(tmp_path / "eval.json")


def test_a_model_cannot_take_a_reserved_name_or_hold_n_images_as_a_metric():
    scores = ModelScores(dict.fromkeys(HEADLINE_NAMES, 1.0), n_images=1)
    with pytest.raises(ResultsError, match="comparisons is a reserved key"):
        EvalSummary({"comparisons": scores})
    with pytest.raises(ResultsError, match="'n_images' is a field of its own"):
        ModelScores({"n_images": 1}, n_images=1)


def test_the_report_reads_an_eval_summary(tmp_path):
    from facesr.report import ReportError
    from facesr.report.build import comparison_rows, read_eval, seed_rows

    scores = read_eval(RUN / "eval.json")
    assert scores == EvalSummary.read(RUN / "eval.json")
    table = seed_rows(scores.seeds)
    assert [row[0] for row in table.rows] == ["SRResNet", "Method 1", "Method 2 (GAN)"]
    assert table.rows[1][-1] == "3"
    paired = comparison_rows(scores.models, scores.comparisons)
    assert [row[0] for row in paired.rows] == ["Method 1", "Method 2 (GAN)"] and paired.rows[0][-1] == "100"
    broken = _broken(tmp_path, "eval.json", lambda d: d["method1"].pop("psnr"))
    with pytest.raises(ReportError, match=r"eval\.json: method1: missing psnr"):
        read_eval(broken)
