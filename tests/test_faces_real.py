"""`--faces auto` on a real photo: MTCNN detection, alignment and paste-back need real faces, so these
tests use the real mini faces of ../shared (marker `mini`; they fail, not skip, where those are absent).
Everything else of facesr.inference is tested in tests/inference/ on synthetic faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from inference.inference_helpers import as_tensor, assert_image, train_tiny_method1
from PIL import Image

import facesr
from facesr.cli import main as cli_main
from facesr.inference import upscale_files

pytestmark = pytest.mark.mini


def _mini_pairs(mini_dir: Path, ids) -> tuple:
    hr, lr = [], []
    for i in ids:
        with Image.open(mini_dir / "CelebA-HQ-img" / f"{i}.jpg") as im:
            h = im.convert("RGB").resize((128, 128), Image.BICUBIC)
        hr.append(np.asarray(h))
        lr.append(np.asarray(h.resize((16, 16), Image.BICUBIC)))
    return as_tensor(np.stack(lr)), as_tensor(np.stack(hr))


@pytest.fixture(scope="module")
def trained_method1(mini_dir, tmp_path_factory) -> Path:
    """A tiny Method 1 trained for a few steps on real faces."""
    lr, hr = _mini_pairs(mini_dir, range(100, 112))
    return train_tiny_method1(lr, hr, tmp_path_factory.mktemp("models") / "method1.pt")


@pytest.fixture(scope="module")
def two_face_photo(mini_dir, tmp_path_factory) -> Path:
    rng = np.random.default_rng(3)
    bg = (rng.integers(0, 85, (300, 420, 3)) + np.array([70, 100, 50])).astype(np.uint8)
    photo = Image.fromarray(bg)
    for x, y, size, face_id in [(30, 60, 140, 20), (250, 90, 120, 21)]:
        with Image.open(mini_dir / "CelebA-HQ-img" / f"{face_id}.jpg") as im:
            photo.paste(im.convert("RGB").resize((size, size), Image.BICUBIC), (x, y))
    path = tmp_path_factory.mktemp("photos") / "two_faces.png"
    photo.save(path)
    return path


def test_photo_with_two_faces_is_replaced_inside_masks_only(two_face_photo, trained_method1, tmp_path, capsys):
    """Acceptance 3."""
    up = facesr.load(trained_method1, device="cpu")
    with Image.open(two_face_photo) as im:
        photo = np.asarray(im.convert("RGB"))
    res = facesr.inference.upscale_photo(photo, up)
    assert len(res.faces) == 2
    assert res.image.shape == photo.shape and res.image.dtype == np.uint8
    outside = res.mask == 0
    np.testing.assert_array_equal(res.image[outside], photo[outside])
    for face in res.faces:
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        box_mask = np.zeros_like(res.mask, dtype=bool)
        box_mask[y0:y1, x0:x1] = True
        core = box_mask & (res.mask >= 0.999)
        assert core.sum() > 0.5 * (x1 - x0) * (y1 - y0), "the paste mask should cover the face"
        diff = np.abs(res.image[core].astype(int) - photo[core].astype(int)).mean()
        assert diff > 1.0, f"face at {face.box} was not replaced (mean change {diff:.2f})"

    out = tmp_path / "out"
    rc = cli_main(["upscale", str(two_face_photo), "-o", str(out), "--faces", "auto", "--model",
                   str(trained_method1), "--compare", "--save-parsing", "--device", "cpu"])
    assert rc == 0
    with Image.open(out / "two_faces.png") as im:
        np.testing.assert_array_equal(np.asarray(im), res.image)
    report = json.loads((out / "faces.json").read_text())
    assert len(report[str(two_face_photo)]) == 2
    assert "2 face(s)" in capsys.readouterr().out
    for k in range(2):
        assert_image(out / "compare" / f"two_faces_face{k}.png", (3 * 128 + 8, 128))
        assert_image(out / "parsing" / f"two_faces_face{k}.png", (128, 128))

    res4 = facesr.inference.upscale_photo(photo, up, photo_scale=4)
    assert res4.image.shape == (4 * photo.shape[0], 4 * photo.shape[1], 3)


def test_no_face_in_auto_mode_names_the_file_and_others_complete(two_face_photo, trained_method1, tmp_path):
    blank = tmp_path / "wall.png"
    Image.new("RGB", (200, 150), (120, 110, 100)).save(blank)
    up = facesr.load(trained_method1, device="cpu")
    report = upscale_files([blank, two_face_photo], tmp_path / "out", upscaler=up, faces="auto")
    assert len(report.errors) == 1 and str(blank) in report.errors[0] and "no face found" in report.errors[0]
    assert (tmp_path / "out" / "two_faces.png").is_file()
    assert not (tmp_path / "out" / "wall.png").exists()
