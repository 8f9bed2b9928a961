"""A seed sweep as queued DVC experiments (docs/experiments.md): `dvc exp run --queue` twice on the
tiny profile, `dvc queue start`, and `dvc exp show --json` lists both with their eval metrics.

The sweep is queued in a copy of the session's reproduced tiny tree (tests/conftest.py's `tiny_repro`),
as a sweep after a first run is: the data stages come from DVC's cache, only train onward runs."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from repo_copy import BIN, ran_stages

pytestmark = [pytest.mark.slow, pytest.mark.long]  # two tiny trainings, one after the other (the time is printed)

# not 0, the tiny profile's own seed: that experiment would be the reproduced one, all of it cached
SEEDS = (1, 2)


def dvc(repo: Path, env: dict[str, str], *args: str, timeout: float = 120) -> str:
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"dvc {' '.join(args)}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def experiments(shown: list[dict]) -> dict[str, dict]:
    """name -> data of every experiment in `dvc exp show --json` (one baseline, its experiments)."""
    found = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                if rev.get("name"):
                    found[rev["name"]] = rev.get("data") or {}
    return found


def check_shown(shown: dict[str, dict]) -> None:
    """Both experiments in `dvc exp show`, each with its params and its eval and train metrics."""
    assert {f"seed{s}" for s in SEEDS} <= set(shown)
    for seed in SEEDS:
        data = shown[f"seed{seed}"]
        params = data["params"]["params.yaml"]["data"]
        assert params["profile"] == "tiny" and params["train"]["search"]["seed"] == [seed]
        metrics = data["metrics"]
        assert all("data" in metrics[f] for f in ("metrics/eval.json", "metrics/train.json")), (seed, metrics)
        scores = metrics["metrics/eval.json"]["data"]
        for model in ("bicubic", "srresnet", "method1", "method2"):
            assert isinstance(scores[model]["psnr"], float), (seed, model)
        # dvc exp show keeps a metrics file's numbers and strings (not its lists): the one trial's name
        train = metrics["metrics/train.json"]["data"]
        assert train["variants"]["method1"]["exported_trial"] == f"seed{seed}"
    # the bicubic row does not depend on the seed; the trained models do
    a, b = (shown[f"seed{s}"]["metrics"]["metrics/eval.json"]["data"] for s in SEEDS)
    assert a["bicubic"]["psnr"] == b["bicubic"]["psnr"] and a["method1"]["psnr"] != b["method1"]["psnr"]


def test_a_queued_seed_sweep_runs_and_dvc_exp_show_lists_both(tiny_repro_copy, e2e_env, prefect_server, tmp_path):
    repo = tiny_repro_copy
    env = e2e_env | {"PREFECT_API_URL": prefect_server}  # one Prefect server for every stage of both experiments
    t0 = time.monotonic()
    try:
        for seed in SEEDS:
            dvc(repo, env, "exp", "run", "--queue", "--name", f"seed{seed}", "-S", "profile=tiny",
                "-S", f"train.search.seed=[{seed}]")
        # the worker it forks keeps its stdout: a file, not a pipe that would never reach EOF
        with open(tmp_path / "queue-start.log", "w") as log:
            started = subprocess.run([str(BIN / "dvc"), "queue", "start", "--jobs", "1"], cwd=repo, env=env,
                                     stdout=log, stderr=subprocess.STDOUT, timeout=120)
        assert started.returncode == 0, (tmp_path / "queue-start.log").read_text()
        deadline = time.monotonic() + 1200
        while True:
            status = dvc(repo, env, "queue", "status")
            if not any(word in status for word in ("Queued", "Running")):
                break
            assert time.monotonic() < deadline, f"the queue did not finish:\n{status}"
            time.sleep(5)
        elapsed = time.monotonic() - t0
        logs = {s: dvc(repo, env, "queue", "logs", f"seed{s}", timeout=60) for s in SEEDS}
        assert status.count("Success") == len(SEEDS), status + "".join(logs.values())
        # the data stages came from the cache the first run filled (docs/experiments.md); the seed's stages ran
        for seed in SEEDS:
            assert ran_stages(logs[seed]) == ["train", "train_gan", "evaluate", "report"], logs[seed][-4000:]
        shown = experiments(json.loads(dvc(repo, env, "exp", "show", "--json")))
    finally:
        # the worker exits once the queue is empty; --kill ends what a failed wait left running
        subprocess.run([str(BIN / "dvc"), "queue", "stop", "--kill"], cwd=repo, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
    print(f"two queued tiny experiments after the first repro: {elapsed:.0f} s")

    check_shown(shown)
