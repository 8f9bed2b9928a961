"""The train stage end to end under Ray Tune + MLflow (acceptance 3 and 4), on a few real faces."""

import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import TINY

from facesr.config import load_context, load_section
from facesr.fileio import sha256_file

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `stages` is a top-level folder, not an installed package
    sys.path.insert(0, str(REPO))


def smoke_config(section: dict, stage: str = "train"):
    """A training section parsed as `python -m stages.<stage> --smoke-test` parses it (load_stage)."""
    from facesr.train.config import parse_stage

    return parse_stage(section, stage=stage, gan=stage == "train_gan", smoke_test=True,
                       context=load_context(REPO / "params.yaml"))


def tiny_section(seeds=(0, 1)) -> dict:
    section = load_section(REPO / "params.yaml", "train")
    for spec in section["variants"].values():
        spec["model_args"] = dict(TINY[spec["model"]])
    section["search"]["seed"] = list(seeds)
    section["loop"]["val_lpips"] = False
    section["resources"] = {"cpus_per_trial": 1, "gpus_per_trial": 1}
    section["max_failures"] = 1
    return section


@pytest.mark.slow
def test_train_stage_2_variants_x_2_seeds_with_a_retry_each(prepared_small, tmp_path, monkeypatch):
    import mlflow

    from stages import train

    # every trial cuts its last.pt (step 2) in half at step 3 and dies; max_failures=1 retries it,
    # which falls back to the copy of that checkpoint Ray kept (there is no previous.pt yet)
    monkeypatch.setenv("FACESR_FAULT_STEP", "3")
    monkeypatch.setenv("FACESR_FAULT_MODE", "corrupt")
    out = tmp_path / "out"
    summary = train.run(smoke_config(tiny_section()), data=prepared_small, models=out / "models",
                        metrics=out / "train.json", curves=out / "curves", workdir=tmp_path / "runs", smoke_test=True)

    assert sorted(p.name for p in (out / "models").iterdir()) == ["method1.pt", "srresnet.pt", "trials"]
    assert sorted(p.name for p in (out / "curves").iterdir()) == ["method1.csv", "srresnet.csv"]
    written = json.loads((out / "train.json").read_text())
    # every seed's generator beside the best one (issue 18), listed per variant with the exported one
    from facesr.models import load_generator

    for variant in ("method1", "srresnet"):
        entry = written["variants"][variant]
        trials = entry["trials"]
        assert [(t["name"], t["seed"], t["point"]) for t in trials] == [
            ("seed0", 0, {"lr": 2.5e-4, "seed": 0}), ("seed1", 1, {"lr": 2.5e-4, "seed": 1})]
        assert sorted(p.name for p in (out / "models" / "trials" / variant).iterdir()) == ["seed0.pt", "seed1.pt"]
        (best,) = [t for t in trials if t["exported"]]
        assert entry["exported_trial"] == best["name"] and best["run"] == entry["trial"]
        assert best["val_psnr"] == max(t["val_psnr"] for t in trials) == entry["metrics"]["val_psnr"]
        assert (out / "models" / best["file"]).read_bytes() == (out / "models" / f"{variant}.pt").read_bytes()
        for t in trials:
            _, meta = load_generator(out / "models" / t["file"])  # weights only, like the export
            assert meta["model"] == variant
    assert written["variants"]["method1"]["step"] == 4 and len(written["trials"]) == 4
    # training seconds survive the retry (carried in the checkpoint's history): the equal-wall-clock axis
    assert all(t["train_s"] > 0 for t in written["trials"])
    assert all(t["error"] is None and t["resumed_from"] == 2 and t["step"] == 4 for t in written["trials"])
    identity = written["identity"]
    assert set(identity) == {"data", "init", "code"} and identity["init"] == ""
    assert len({t["fingerprint"] for t in written["trials"]}) == 4
    assert all(len(list(d.glob(".fault_fired_3"))) == 1 for d in (tmp_path / "runs").glob("*-*") if d.is_dir()
               and d.name != "ray")

    parent_id = summary["mlflow"]["parent_run_id"]
    runs = mlflow.search_runs(experiment_names=["facesr"], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                              output_format="list")
    assert len(runs) == 4
    client = mlflow.MlflowClient()
    names = None
    for run in runs:
        assert run.info.status == "FINISHED"
        assert {"git_commit", "dvc_stage", "params_hash", "profile", "hardware"} <= set(run.data.tags)
        assert run.data.tags["data_sha256"] == identity["data"] and run.data.tags["code_sha256"] == identity["code"]
        assert run.data.tags["run_fingerprint"] in {t["fingerprint"] for t in written["trials"]}
        assert "val_psnr" in run.data.metrics and "loss" in run.data.metrics
        # the retry reopened this run (no 5th nested run) and re-logged step 3 with the same value
        losses = client.get_metric_history(run.info.run_id, "loss")
        assert {m.step for m in losses} == {1, 2, 3, 4}
        assert len({m.value for m in losses if m.step == 3}) == 1
        assert "mlartifacts" in run.info.artifact_uri  # beside the test sqlite DB, not ./mlruns
        names = names or set(run.data.params)
        assert set(run.data.params) == names
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "samples" in artifacts and "curves.csv" in artifacts

    # the registered models load without unpickling anything, as pyfunc and through facesr.load
    import numpy as np

    import facesr
    from facesr.models import load_generator
    from facesr.models.predictor import Predictor

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    for name, variant in (("facesr-method1", "method1"), ("facesr-srresnet", "srresnet")):
        pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/1")
        assert pyfunc.metadata.metadata["facesr_model"] == variant
        for batch in (1, 4):
            assert pyfunc.predict(np.random.rand(batch, 3, 16, 16).astype(np.float32)).shape == (batch, 3, 128, 128)
        lr = torch.rand(2, 3, 16, 16)
        model, _ = load_generator(out / "models" / f"{variant}.pt")
        up = facesr.load(f"models:/{name}/1", device="cpu")
        # the exported file's weights in the precision facesr.load picked (bf16 on a CPU with fast bf16)
        torch.testing.assert_close(up.predict(lr).sr, Predictor(model, device="cpu", precision=up.precision)(lr).sr,
                                   atol=1e-6, rtol=0)


@pytest.mark.slow
def test_train_gan_stage_exports_and_registers_method2(prepared_small, tmp_path):
    import mlflow

    from facesr.models import load_generator
    from stages import train, train_gan

    section = tiny_section(seeds=(0,))
    section["variants"] = {"method1": section["variants"]["method1"]}
    train.run(smoke_config(section), data=prepared_small, models=tmp_path / "m", metrics=tmp_path / "t.json",
              curves=tmp_path / "c", workdir=tmp_path / "runs", smoke_test=True)
    gan = load_section(REPO / "params.yaml", "train_gan")
    gan["loop"].update(val_lpips=False, discriminator_args={"num_feat": 4})
    # leftovers of a killed run of this stage are swept when it starts (issue 15)
    stale = [tmp_path / ".g.tmp-4242", tmp_path / ".g.old-4242", tmp_path / "gruns" / ".collect.tmp-x1"]
    for d in stale:
        d.mkdir(parents=True)
    summary = train_gan.run(smoke_config(gan, "train_gan"), data=prepared_small, init=tmp_path / "m" / "method1.pt", models=tmp_path / "g",
                            metrics=tmp_path / "g.json", curves=tmp_path / "gc", workdir=tmp_path / "gruns",
                            smoke_test=True)
    assert not any(d.exists() for d in stale)
    assert not list((tmp_path / "gruns").glob(".collect.*"))  # the collected trial files are removed too
    model, meta = load_generator(tmp_path / "g" / "method2.pt")
    assert meta["model"] == "method1" and meta["extra"]["init"].endswith("method1.pt")
    assert summary["variants"]["method2"]["registered_model"].startswith("models:/facesr-gan/")
    import numpy as np

    import facesr

    uri = summary["variants"]["method2"]["registered_model"]
    sr = mlflow.pyfunc.load_model(uri).predict(np.random.rand(3, 3, 16, 16).astype(np.float32))
    assert sr.shape == (3, 3, 128, 128)
    assert facesr.load(uri, device="cpu").name == "method1"
    assert summary["identity"]["init"] == sha256_file(tmp_path / "m" / "method1.pt")


@pytest.mark.slow
def test_a_trial_killed_on_its_last_attempt_fails_the_stage_and_its_run(prepared_small, tmp_path, monkeypatch):
    """SIGKILL leaves the trial's MLflow run RUNNING; the stage closes it as FAILED and says which trial."""
    import mlflow

    from facesr.train.trials import TrainStageError
    from stages import train

    section = tiny_section(seeds=(0,))
    section["variants"] = {"srresnet": section["variants"]["srresnet"]}
    section["max_failures"] = 0
    monkeypatch.setenv("FACESR_FAULT_STEP", "3")
    monkeypatch.setenv("FACESR_FAULT_MODE", "kill")
    with pytest.raises(TrainStageError, match=r"1 of 1 trials failed"):
        train.run(smoke_config(section), data=prepared_small, models=tmp_path / "m", metrics=tmp_path / "t.json",
                  curves=tmp_path / "c", workdir=tmp_path / "runs", smoke_test=True)
    summary = json.loads((tmp_path / "t.json").read_text())
    (trial,) = summary["trials"]
    assert trial["error"] and summary["variants"] == {}
    run_id = json.loads((tmp_path / "runs" / trial["name"] / "mlflow_run.json").read_text())["run_id"]
    assert mlflow.MlflowClient().get_run(run_id).info.status == "FAILED"
