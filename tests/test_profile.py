"""facesr.profile: baking a profile into params.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_profile_merges_keeps_comments_and_rejects_unknown_keys(tmp_path):
    from facesr.profile import ProfileError, apply_profile

    params = tmp_path / "params.yaml"
    params.write_text("# head comment\ntrain:\n  loop:\n    steps: 100   # why 100\n    lr: 2.5e-4\n  keep: [1, 2]\n")
    (tmp_path / "p.yaml").write_text("train:\n  loop:\n    steps: 5\n")
    changes = apply_profile(tmp_path / "p.yaml", params)
    assert changes == ["train.loop.steps: 100 -> 5"]
    text = params.read_text()
    assert "# head comment" in text and "# why 100" in text and "steps: 5" in text and "keep: [1, 2]" in text
    (tmp_path / "bad.yaml").write_text("train:\n  loop:\n    stepz: 5\n")
    with pytest.raises(ProfileError, match=r"train\.loop\.stepz: not a key"):
        apply_profile(tmp_path / "bad.yaml", params)
    assert "steps: 5" in params.read_text()


@pytest.mark.parametrize("profile", ["tiny", "mini", "mini-cpu", "mini-cpu-ablation", "mini-cpu-seeds", "thesis"])
def test_shipped_profiles_apply_to_params_yaml(profile, tmp_path):
    from facesr.profile import apply_profile

    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    assert apply_profile(REPO / "profiles" / f"{profile}.yaml", params)


def test_cli_dry_run_writes_nothing_and_bad_profile_exits_2(tmp_path, capsys):
    from facesr.profile import main

    params = tmp_path / "params.yaml"
    params.write_text("train:\n  loop:\n    steps: 100\n")
    (tmp_path / "p.yaml").write_text("train:\n  loop:\n    steps: 5\n")
    assert main([str(tmp_path / "p.yaml"), "--params", str(params), "--dry-run"]) == 0
    assert "would change 1 key(s)" in capsys.readouterr().out and "steps: 100" in params.read_text()
    assert main([str(tmp_path / "missing.yaml"), "--params", str(params)]) == 2
    assert "missing.yaml: not found" in capsys.readouterr().err
