"""facesr.inference.files: output names (no two inputs share one), file modes, and the output size
limit."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facesr
from facesr.cli import main as cli_main
from facesr.inference import upscale_files


def _face_file(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (value, 100, 90)).save(path)
    return path


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_inputs_that_would_share_an_output_fail_before_anything_is_written(tmp_path, capsys):
    """x/a.jpg, y/a.jpg, z/a.jpg all mapped to a.png or a_jpg.png and overwrote each other silently."""
    files = [_face_file(tmp_path / d / "a.jpg", v) for d, v in (("x", 10), ("y", 60), ("z", 110))]
    out = tmp_path / "out"
    rc = cli_main(["upscale", *map(str, files), "-o", str(out), "--model", "bicubic", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "same output file" in err and all(str(f) in err for f in files), err
    assert not out.exists()
    # an input named like the renamed one (a.jpg beside a.png becomes a_jpg.png)
    _face_file(tmp_path / "x" / "a.png", 30)
    _face_file(tmp_path / "w" / "a_jpg.png", 40)
    with pytest.raises(facesr.inference.OutputClashError, match="a_jpg.png"):
        upscale_files([tmp_path / "x", tmp_path / "w"], out, upscaler=facesr.load("bicubic", device="cpu"))
    assert not out.exists()


def test_every_input_gets_its_own_output(tmp_path):
    _face_file(tmp_path / "in" / "a.jpg", 10)
    _face_file(tmp_path / "in" / "a.png", 60)
    _face_file(tmp_path / "in" / "sub" / "a.jpg", 110)
    _face_file(tmp_path / "in" / "b.jpg", 160)
    up = facesr.load("bicubic", device="cpu")
    out = tmp_path / "out"
    # the folder, plus one of its files again: that file is done once, under its folder name
    report = upscale_files([tmp_path / "in", tmp_path / "in" / "b.jpg"], out, upscaler=up)
    assert report.ok
    written = sorted(Path(p).relative_to(out).as_posix() for p in report.written)
    assert written == ["a.png", "a_jpg.png", "b.png", "sub/a.png"]
    for rel, src in [("a.png", "a.png"), ("a_jpg.png", "a.jpg"), ("sub/a.png", "sub/a.jpg"), ("b.png", "b.jpg")]:
        with Image.open(tmp_path / "in" / src) as im:
            np.testing.assert_array_equal(_png(out / rel), np.asarray(up.upscale(im.convert("RGB"))), err_msg=rel)


def test_an_input_folder_named_like_an_extras_folder_is_refused(tmp_path):
    _face_file(tmp_path / "in" / "a.jpg", 10)
    _face_file(tmp_path / "in" / "compare" / "a.jpg", 60)
    up = facesr.load("bicubic", device="cpu")
    with pytest.raises(facesr.inference.OutputClashError, match="--compare"):
        upscale_files([tmp_path / "in"], tmp_path / "out", upscaler=up, compare=True)
    assert not (tmp_path / "out").exists()
    assert upscale_files([tmp_path / "in"], tmp_path / "out", upscaler=up).ok  # without --compare: no clash


def test_outputs_are_as_readable_as_other_files(tmp_path):
    """Outputs get the umask's mode (0644 here), not mkstemp's private 0600."""
    _face_file(tmp_path / "in" / "a.jpg", 10)
    old = os.umask(0o022)
    try:
        report = upscale_files([tmp_path / "in"], tmp_path / "out", upscaler=facesr.load("bicubic", device="cpu"),
                               compare=True)
    finally:
        os.umask(old)
    assert report.ok and len(report.written) == len(report.extras) == 1
    for p in report.written + report.extras:
        assert Path(p).stat().st_mode & 0o777 == 0o644, p
    assert not [p for p in (tmp_path / "out").rglob(".*")], "no temp files left"


def test_size_is_capped_at_the_input_pixel_limit(tmp_path, capsys):
    face = _face_file(tmp_path / "a.png", 10)
    rc = cli_main(["upscale", str(face), "-o", str(tmp_path / "out"), "--size", "10000", "--model", "bicubic",
                   "--device", "cpu"])
    assert rc == 2 and "--size 10000" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # 6000 x 6000 fits alone (36 M pixels), but not in a --compare strip (18008 x 6000 = 108 M)
    with pytest.raises(facesr.inference.InferenceError, match="--size 6000"):
        upscale_files([face], tmp_path / "out", upscaler=facesr.load("bicubic", device="cpu"), size=6000,
                      compare=True)
