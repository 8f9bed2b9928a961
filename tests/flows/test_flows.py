"""Stage flows on Prefect's ephemeral server, the flow CLIs, the pipeline flow and profiles."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAGES = ["download", "merge_masks", "downscale", "train", "train_gan", "evaluate", "report"]


MODELS = ["bicubic", "srresnet", "method1", "method2"]


def test_stage_flags_come_from_run():
    """`python -m stages.<name>` and `python -m flows.stage stages.<name>`: one flag per path argument of
    run, required unless it has a default, with its help from run's docstring."""
    from stages import _cli, download, evaluate

    parser = _cli.build_parser(evaluate.run)
    flags = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert set(flags) == {"params", "data", "models", "gan", "out", "per_image", "images", "smoke_test"}
    assert flags["per_image"].option_strings == ["--per-image"] and flags["per_image"].required
    assert flags["gan"].help == "folder with method2.pt (train_gan output)"
    assert flags["params"].default == "params.yaml" and parser.prog == "python -m stages.evaluate"
    cache = next(a for a in _cli.build_parser(download.run)._actions if a.dest == "cache")
    assert not cache.required and cache.default is None
    with pytest.raises(SystemExit) as exc:  # a missing path is a usage error, exit 2
        parser.parse_args(["--data", "d"])
    assert exc.value.code == 2


def test_a_stage_gets_the_shared_keys_its_run_declares_and_no_flag_for_them(tmp_path):
    from stages import _cli, report, train

    (tmp_path / "params.yaml").write_text("profile: null\nmlflow: {tracking_uri: sqlite:///x.db, experiment: e}\n"
                                          "train: {a: 1}\nreport: {b: 2}\n")
    assert _cli.load(str(tmp_path / "params.yaml"), "train", _cli.shared_keys(train.run)) == {
        "params": {"a": 1}, "source": str(tmp_path / "params.yaml"), "profile": None,
        "mlflow": {"tracking_uri": "sqlite:///x.db", "experiment": "e"}}
    assert set(_cli.load(str(tmp_path / "params.yaml"), "report", _cli.shared_keys(report.run))) == {"params", "source"}
    flags = {a.dest for a in _cli.build_parser(train.run)._actions}
    assert not flags & {"mlflow", "profile"} and {"data", "models", "workdir"} <= flags


def test_dvc_yaml_commands_are_the_flows():
    import yaml

    from stages import _cli

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert list(stages) == STAGES
    for name, stage in stages.items():
        assert stage["cmd"].startswith(f"python -m flows.stage stages.{name} --params params.yaml"), name
        # `profile` (which picks the profile file), the shared top-level keys its run declares
        # (stages._cli.shared_keys), its own section and the same section of the profile: nothing else
        shared = _cli.shared_keys(importlib.import_module(f"stages.{name}").run)
        assert stage["params"] == ["profile", *(k for k in shared if k != "profile"), name,
                                   {"profiles/${profile}.yaml": [name]}], name
        assert shared == (("profile", "mlflow") if name in ("train", "train_gan", "evaluate") else ()), name
        # Each stage's flags parse with its own parser (paths live only in dvc.yaml).
        argv = stage["cmd"].split()[4:]
        _cli.build_parser(importlib.import_module(f"stages.{name}").run).parse_args(argv)


@pytest.fixture
def evaluation(tmp_path) -> dict[str, str]:
    """A hand-made evaluation (two faces, four models) and a report section: the report stage's inputs."""
    import numpy as np
    from PIL import Image

    images = tmp_path / "evaluation"
    rng = np.random.default_rng(0)
    rows = ["model,id,psnr,ssim,lpips,psnr_y,ssim_y"]
    for folder in ["lr", "hr", *MODELS]:
        (images / folder).mkdir(parents=True)
        for face in (1, 2):
            size = 16 if folder == "lr" else 128
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(images / folder / f"{face}.png")
    scores = {}
    for m in MODELS:
        scores[m] = {"psnr": 20.0, "ssim": 0.5, "lpips": 0.4, "psnr_y": 21.0, "ssim_y": 0.55, "n_images": 2}
        rows += [f"{m},1,19.5,0.5,0.4,21,0.55", f"{m},2,20.5,0.5,0.4,21,0.55"]
    (tmp_path / "eval.json").write_text(json.dumps(scores))
    (tmp_path / "per_image.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "params.yaml").write_text(
        "report:\n  title: t\n  grid_faces: 2\n  worst_faces: 1\n  worst_by: method1\n"
        "  crop: [36, 16, 48, 96]\n  crop_faces: 1\n  parsing_faces: 1\n"
    )
    return {"params": str(tmp_path / "params.yaml"), "eval": str(tmp_path / "eval.json"),
            "per_image": str(tmp_path / "per_image.csv"), "images": str(images),
            "train_curves": str(tmp_path / "none"), "gan_curves": str(tmp_path / "none"),
            "out": str(tmp_path / "reports")}


def test_report_flow_runs_on_the_ephemeral_server(evaluation):
    """A real flow run named after the stage, with its two tasks, recorded by Prefect."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    import stages.report
    from flows.stage import stage_flow

    paths = dict(evaluation)
    params = paths.pop("params")
    state = stage_flow(stages.report)(params_path=params, paths=paths, return_state=True)
    summary = state.result()
    assert summary["models"] == MODELS
    assert summary["index"] == str(Path(evaluation["out"]) / "index.html") and Path(summary["index"]).is_file()
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        names = {client.read_flow(r.flow_id).name: r.state_type.value for r in runs}
        this_run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        tasks = {t.name.rsplit("-", 1)[0]: t.state_type.value for t in client.read_task_runs(flow_run_filter=this_run)}
    assert names.get("report") == "COMPLETED"
    assert tasks == {"load-params": "COMPLETED", "run-report": "COMPLETED"}


def test_stage_cli_prints_its_summary_as_json(evaluation):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in evaluation.items()]
    proc = subprocess.run([sys.executable, "-m", "stages.report", *flags, "--smoke-test"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["models"] == MODELS


def test_stage_cli_bad_params_exit_2_with_the_file_named(tmp_path):
    """The data stages too: bad params exit 2 with `error: <file>: <problem>` on stderr, nothing on stdout."""
    (tmp_path / "params.yaml").write_text("report:\n  title: t\n")
    proc = subprocess.run([sys.executable, "-m", "stages.download", "--params", str(tmp_path / "params.yaml"),
                           "--out", str(tmp_path / "raw")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'params.yaml'}: no 'download:' section " \
        "(stages read their own section only)"
    assert proc.stdout == ""


def test_flow_cli_bad_params_exit_2_with_the_file_named(tmp_path):
    (tmp_path / "params.yaml").write_text("download:\n  source: synthetic\n")
    proc = subprocess.run([sys.executable, "-m", "flows.stage", "stages.report", "--params", str(tmp_path / "params.yaml"),
                           "--eval", "e", "--per-image", "p", "--images", "i", "--train-curves", "t",
                           "--gan-curves", "g", "--out", "o"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert "params.yaml: no 'report:' section" in proc.stderr


def test_flow_cli_unknown_stage_exit_2():
    proc = subprocess.run([sys.executable, "-m", "flows.stage", "stages.nope"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "'stages.nope'" in proc.stderr and "usage: python -m flows.stage" in proc.stderr


def test_pipeline_flow_fails_when_dvc_fails(tmp_path):
    from flows.pipeline import PipelineError, pipeline_flow

    # Not a DVC repository: dvc exits non-zero and the flow must fail, not report success.
    with pytest.raises(PipelineError, match="dvc repro failed with exit code"):
        pipeline_flow(repo=str(tmp_path))


def test_pipeline_command_line():
    from flows.pipeline import DEFAULT_CRON, build_parser, repro_command

    args = build_parser().parse_args(["serve"])
    assert args.cron == DEFAULT_CRON and args.name == "nightly"
    cmd = repro_command("evaluate", force=True)
    assert cmd[1:] == ["repro", "--force", "evaluate"] and Path(cmd[0]).name == "dvc"
    assert repro_command(profile="mini-cpu")[1:] == ["exp", "run", "-S", "profile=mini-cpu"]
    assert build_parser().parse_args(["run", "--profile", "mini"]).profile == "mini"


