"""`facesr score` on bicubic outputs written to tmp folders, and its errors on mismatched folders."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from facesr.metrics.score import ScoreError, load_pairs, score_dirs

SK = dict(data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
N = 6


@pytest.fixture()
def folders(tmp_path, bicubic_faces):
    sr, hr = bicubic_faces
    (tmp_path / "sr").mkdir()
    (tmp_path / "hr").mkdir()
    for i in range(N):
        Image.fromarray(sr[i]).save(tmp_path / "sr" / f"{i}.png")
        Image.fromarray(hr[i]).save(tmp_path / "hr" / f"{i}.png")
    return tmp_path / "sr", tmp_path / "hr"


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "facesr.cli", "score", *map(str, args)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


@pytest.mark.mini
def test_cli_score_matches_skimage(folders, tmp_path, bicubic_faces):
    sr_dir, hr_dir = folders
    proc = _cli("--sr", sr_dir, "--hr", hr_dir, "--json", tmp_path / "o.json", "--csv", tmp_path / "o.csv",
                "--batch", 4)
    assert proc.returncode == 0, proc.stderr
    assert "mean" in proc.stdout and "lpips" in proc.stdout
    result = json.loads((tmp_path / "o.json").read_text())
    sr, hr = bicubic_faces
    assert [r["name"] for r in result["rows"]] == [str(i) for i in range(N)]
    for i, row in enumerate(result["rows"]):
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(hr[i], sr[i], data_range=255), abs=1e-3)
        assert row["ssim"] == pytest.approx(structural_similarity(hr[i], sr[i], channel_axis=-1, **SK), abs=1e-3)
        assert 0.2 < row["lpips"] < 0.9
    assert result["mean"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in result["rows"]]))
    rows = list(csv.DictReader(open(tmp_path / "o.csv")))
    assert len(rows) == N + 1 and rows[-1]["name"] == "mean"
    assert float(rows[-1]["ssim_y"]) == pytest.approx(result["mean"]["ssim_y"])


@pytest.mark.mini
def test_pairs_by_stem_across_formats(folders):
    sr_dir, hr_dir = folders
    (hr_dir / "0.png").unlink()
    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(hr_dir / "0.jpg", quality=95)
    (sr_dir / "notes.txt").write_text("not an image, ignored")
    names = [name for name, _, _ in load_pairs(sr_dir, hr_dir)]
    assert names == [str(i) for i in range(N)]


@pytest.mark.mini
def test_mismatched_folders_one_clear_error(folders, tmp_path):
    sr_dir, hr_dir = folders
    (hr_dir / "1.png").unlink()  # SR without HR
    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(hr_dir / "extra.png")  # HR without SR
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(sr_dir / "2.png")  # size mismatch
    (sr_dir / "3.png").write_bytes(b"\x89PNG garbage")  # unreadable
    with pytest.raises(ScoreError) as e:
        score_dirs(sr_dir, hr_dir)
    msg = str(e.value)
    assert "no HR image" in msg and "1" in msg
    assert "no SR image" in msg and "extra" in msg
    assert "64x64" in msg and "128x128" in msg
    assert str(sr_dir / "3.png") in msg
    proc = _cli("--sr", sr_dir, "--hr", hr_dir, "--json", tmp_path / "never.json")
    assert proc.returncode == 2
    assert "extra" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "never.json").exists()


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScoreError, match="no images"):
        load_pairs(tmp_path / "empty", tmp_path / "empty")
    with pytest.raises(ScoreError, match="not a folder"):
        load_pairs(tmp_path / "nope", tmp_path / "empty")
