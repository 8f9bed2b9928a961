"""facesr.inference.cli: `facesr upscale` on face crops, with its extras, exit codes and messages
(bad inputs of issue 7 among good ones, missing inputs)."""

from __future__ import annotations

import numpy as np
from inference_helpers import assert_image, write_crops
from PIL import Image

import facesr
from facesr.cli import main as cli_main


def test_cli_upscales_five_faces_with_compare_and_parsing(trained_method1, synthetic_faces, tmp_path, capsys):
    """Acceptance 1 with a tiny few-step model."""
    inputs = write_crops(synthetic_faces["hr"][:5], tmp_path / "in")
    out = tmp_path / "out"
    rc = cli_main(["upscale", str(tmp_path / "in"), "-o", str(out), "--model", str(trained_method1),
                   "--compare", "--save-parsing", "--batch", "2", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    for p in inputs:
        assert_image(out / f"{p.stem}.png", (128, 128))
        assert_image(out / "compare" / f"{p.stem}.png", (3 * 128 + 8, 128))
        assert_image(out / "parsing" / f"{p.stem}.png", (128, 128))
    # the output is this model's SR of the input, not a resize of it
    up = facesr.load(trained_method1, device="cpu")
    with Image.open(inputs[0]) as im:
        expected = np.asarray(up.upscale(im.convert("RGB")))
    with Image.open(out / "face0.png") as im:
        np.testing.assert_array_equal(np.asarray(im), expected)
    assert "wrote 5 image(s)" in capsys.readouterr().out

    rc = cli_main(["upscale", str(inputs[0]), "-o", str(tmp_path / "big"), "--model", str(trained_method1),
                   "--size", "256", "--compare", "--device", "cpu"])
    assert rc == 0
    assert_image(tmp_path / "big" / "face0.png", (256, 256))
    assert_image(tmp_path / "big" / "compare" / "face0.png", (3 * 256 + 8, 256))


def test_save_parsing_with_a_model_without_parsing_says_so(tiny_srresnet, synthetic_faces, tmp_path, capsys):
    write_crops(synthetic_faces["hr"][:5], tmp_path / "in")
    rc = cli_main(["upscale", str(tmp_path / "in" / "face1.jpg"), "-o", str(tmp_path / "out"),
                   "--model", str(tiny_srresnet), "--save-parsing", "--device", "cpu"])
    assert rc == 0
    assert "predicts no parsing maps" in capsys.readouterr().err
    assert (tmp_path / "out" / "face1.png").is_file()
    assert not (tmp_path / "out" / "parsing").exists()


def test_bad_inputs_are_reported_and_the_others_complete(bad_inputs, trained_method1, tmp_path, capsys):
    """Acceptance 4: one call with every bad input; each named with its problem, the rest written."""
    out = tmp_path / "out"
    rc = cli_main(["upscale", *map(str, bad_inputs.values()), "-o", str(out), "--model", str(trained_method1),
                   "--device", "cpu", "--batch", "2"])
    err = capsys.readouterr().err
    assert rc == 1
    for key, words in [("text", "not an image"), ("empty", "empty file"), ("truncated", "truncated"),
                       ("bomb", "decompression bomb"), ("float", "32-bit float")]:
        line = next((ln for ln in err.splitlines() if str(bad_inputs[key]) in ln and words in ln), None)
        assert line is not None, f"{key}: no error line naming the file and '{words}' in:\n{err}"
        assert not (out / f"{bad_inputs[key].stem}.png").exists()
    for key, words in [("sixteen", "16-bit"), ("cmyk", "CMYK"), ("palette", "palette")]:
        assert any(str(bad_inputs[key]) in ln and words in ln for ln in err.splitlines()), f"{key} note:\n{err}"
        assert_image(out / f"{bad_inputs[key].stem}.png", (128, 128))
    assert_image(out / "good.png", (128, 128))


def test_missing_input_and_empty_folder(trained_method1, tmp_path, capsys):
    (tmp_path / "empty_dir").mkdir()
    rc = cli_main(["upscale", str(tmp_path / "nope.png"), str(tmp_path / "empty_dir"), "-o", str(tmp_path / "o"),
                   "--model", str(trained_method1), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "nope.png: no such file or folder" in err and "folder holds no image files" in err
