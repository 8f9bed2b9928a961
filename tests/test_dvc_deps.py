"""dvc.yaml lists, for every stage, every project module its command can import (facesr.provenance)."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from facesr.provenance import import_closure

REPO = Path(__file__).resolve().parents[1]


def cmd_module(cmd: str) -> str:
    """The `-m` module of a command (`python -m flows.train ...` -> flows.train)."""
    words = cmd.split()
    return words[words.index("-m") + 1]


def uncovered(dvc: dict) -> dict[str, list[str]]:
    """Per stage, the project files its command imports that no dep (file or folder) covers."""
    out = {}
    for name, stage in dvc["stages"].items():
        deps = [Path(d) for d in stage.get("deps", [])]
        files = [p.relative_to(REPO) for p in import_closure([cmd_module(stage["cmd"])], REPO).values()]
        missing = sorted(str(f) for f in files if not any(f == d or d in f.parents for d in deps))
        if missing:
            out[name] = missing
    return out


def test_every_stage_depends_on_every_module_it_imports():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert set(dvc["stages"]) == {"download", "merge_masks", "downscale", "train", "train_gan", "evaluate", "report"}
    assert uncovered(dvc) == {}


def test_a_stage_depends_on_its_own_stage_module_only():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        closure = import_closure([cmd_module(stage["cmd"])], REPO)
        assert cmd_module(stage["cmd"]) == f"flows.{name}", name
        assert f"stages.{name}" in closure, name
        # so a change to another stage's module or flow reruns nothing here
        assert {m for m in closure if m.startswith("stages.") and m != "stages._cli"} == {f"stages.{name}"}, name
        assert {m for m in closure if m.startswith("flows.")} == {f"flows.{name}"}, name
    broken = copy.deepcopy(dvc)
    broken["stages"]["train"]["deps"].remove("stages/train.py")
    assert uncovered(broken) == {"train": ["stages/train.py"]}


def test_removing_a_dep_is_caught():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for stage, dep in (("train", "facesr/metrics"), ("evaluate", "facesr/models"), ("report", "facesr/report")):
        broken = copy.deepcopy(dvc)
        broken["stages"][stage]["deps"].remove(dep)
        assert any(f.startswith(dep) for f in uncovered(broken)[stage]), (stage, dep)


def test_the_closure_follows_imports_inside_functions_and_import_module(tmp_path):
    train = import_closure(["stages.train"], REPO)
    # stages/train.py imports facesr.train.driver inside run(); the loop imports facesr.metrics, whose
    # __init__ imports its submodules
    assert {"facesr.train.driver", "facesr.train.loop", "facesr.metrics.quality", "facesr.metrics.perceptual",
            "facesr.data.dataset", "facesr", "facesr.train"} <= set(train)
    assert "facesr.report.build" not in train and "facesr.evaluate" not in train
    # no project module uses import_module with a name it builds any more; a made-up one checks the rule
    for name, text in {"facesr/__init__.py": "", "facesr/pkg/__init__.py": "", "facesr/pkg/a.py": "",
                       "facesr/pkg/b.py": "", "facesr/one.py": "", "facesr/other.py": "",
                       "facesr/user.py": "import importlib\n\ndef f(n):\n    importlib.import_module(f'facesr.pkg.{n}')\n"
                                         "    importlib.import_module('facesr.one')\n"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert set(import_closure(["facesr.user"], tmp_path)) == {"facesr", "facesr.user", "facesr.pkg", "facesr.pkg.a",
                                                              "facesr.pkg.b", "facesr.one"}
