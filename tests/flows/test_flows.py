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


# each stage's flags, as written in stages/<name>.py (dvc.yaml, docs/data.md, docs/training.md use them)
FLAGS = {
    "download": {"--params", "--out", "--cache", "--smoke-test"},
    "merge_masks": {"--params", "--raw", "--out", "--smoke-test"},
    "downscale": {"--params", "--raw", "--merged", "--out", "--smoke-test"},
    "train": {"--params", "--data", "--models", "--metrics", "--curves", "--workdir", "--smoke-test"},
    "train_gan": {"--params", "--data", "--init", "--models", "--metrics", "--curves", "--workdir", "--smoke-test"},
    "evaluate": {"--params", "--data", "--models", "--gan", "--out", "--per-image", "--images", "--extra-model",
                 "--smoke-test"},
    "report": {"--params", "--eval", "--per-image", "--images", "--train-curves", "--gan-curves", "--out",
               "--smoke-test"},
}
# the stages that read the RunContext (params.yaml's top-level profile: and mlflow:) besides their section
TRACKED = ("train", "train_gan", "evaluate")


@pytest.mark.parametrize("name", STAGES)
def test_each_stage_help_lists_its_flags(name, capsys):
    stage = importlib.import_module(f"stages.{name}")
    with pytest.raises(SystemExit) as exc:
        stage.main(["--help"])
    assert exc.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"usage: python -m stages.{name}")
    options = shown.partition("options:")[2]
    assert {w.rstrip(",") for w in options.split() if w.startswith("--")} == FLAGS[name] | {"--help"}
    actions = {a.option_strings[0]: a for a in stage.parser()._actions if a.option_strings[0] != "-h"}
    assert set(actions) == FLAGS[name] and all(a.help for a in actions.values()), name
    assert actions["--params"].default == "params.yaml"
    # every path is required, except download's --cache and evaluate's --extra-model (models beside the table's)
    assert {f for f, a in actions.items() if not a.required} == {"--params", "--smoke-test"} | (
        {"--cache"} if name == "download" else {"--extra-model"} if name == "evaluate" else set())


def test_a_missing_path_is_a_usage_error():
    from stages import evaluate

    with pytest.raises(SystemExit) as exc:
        evaluate.parser().parse_args(["--data", "d"])
    assert exc.value.code == 2


def test_dvc_yaml_commands_are_the_flows():
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert list(stages) == STAGES
    for name, stage in stages.items():
        assert stage["cmd"].startswith(f"python -m flows.{name} --params params.yaml"), name
        # `profile` (which picks the profile file), `mlflow` for a stage that reads the RunContext,
        # its own section and the same section of the profile: nothing else
        assert stage["params"] == ["profile", *(["mlflow"] if name in TRACKED else []), name,
                                   {"profiles/${profile}.yaml": [name]}], name
        # Each stage's flags parse with its own parser (paths live only in dvc.yaml).
        argv = stage["cmd"].split()[3:]
        args = importlib.import_module(f"stages.{name}").parser().parse_args(argv)
        assert args.params == "params.yaml" and not args.smoke_test


def test_each_flow_is_named_after_its_stage_and_takes_the_typed_config():
    from prefect import Task

    for name in STAGES:
        module = importlib.import_module(f"flows.{name}")
        the_flow = getattr(module, f"{name}_flow")
        assert the_flow.name == name
        parameters = list(the_flow.parameters.properties)
        assert parameters[0] == ("config" if name in ("train", "train_gan") else "params"), name
        # the training StageConfig holds its RunContext; evaluate takes it beside its section
        assert ("context" in parameters) == (name == "evaluate"), name
        # only I/O retries: the download stage's fetch
        tasks = [v for v in vars(module).values() if isinstance(v, Task)]
        assert len(tasks) == 1 and tasks[0].retries == (2 if name == "download" else 0), name


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
    """A real flow run named after the stage, with its task, recorded by Prefect."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from facesr.config import load_report
    from flows.report import report_flow

    paths = dict(evaluation)
    params = load_report(paths.pop("params"))
    state = report_flow(params, **paths, return_state=True)
    summary = state.result()
    assert summary["models"] == MODELS
    assert summary["index"] == str(Path(evaluation["out"]) / "index.html") and Path(summary["index"]).is_file()
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        names = {client.read_flow(r.flow_id).name: r.state_type.value for r in runs}
        this_run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        tasks = {t.name.rsplit("-", 1)[0]: t.state_type.value for t in client.read_task_runs(flow_run_filter=this_run)}
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    assert names.get("report") == "COMPLETED"
    assert tasks == {"build-report": "COMPLETED"}
    # the typed config is the flow run's parameter, as the Prefect UI shows it
    assert flow_run.parameters["params"]["crop"] == [36, 16, 48, 96]


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
    proc = subprocess.run([sys.executable, "-m", "flows.report", "--params", str(tmp_path / "params.yaml"),
                           "--eval", "e", "--per-image", "p", "--images", "i", "--train-curves", "t",
                           "--gan-curves", "g", "--out", "o"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert "params.yaml: no 'report:' section" in proc.stderr and proc.stdout == ""


BAD_VALUE = {"download": ("workers", 0), "merge_masks": ("on_error", "ignore"), "downscale": ("kernel", "box"),
             "train": ("max_failures", "two"), "train_gan": ("max_failures", "two"), "evaluate": ("device", "tpu"),
             "report": ("crop", [1, 2, 0, 4])}


@pytest.mark.parametrize("name", STAGES)
def test_stage_cli_bad_param_value_exit_2_naming_file_and_key(name, tmp_path):
    """A bad value in each stage's section: `error: <file>: <section>.<key>: ...` on stderr, exit 2."""
    import yaml

    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["profile"] = None
    key, bad = BAD_VALUE[name]
    data[name][key] = bad
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    paths = [f"{flag}={tmp_path / 'x'}" for flag in sorted(FLAGS[name] - {"--params", "--smoke-test"})]
    proc = subprocess.run([sys.executable, "-m", f"stages.{name}", "--params", str(tmp_path / "params.yaml"), *paths],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {tmp_path / 'params.yaml'}: {name}.{key}: "), proc.stderr
    assert proc.stdout == ""


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


