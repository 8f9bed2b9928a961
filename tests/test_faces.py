"""facesr.faces: landmark alignment, the feathered paste-back, and MTCNN on real faces."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from facesr import faces
from facesr.faces import (
    CANONICAL_LANDMARKS_128,
    DetectorUnavailableError,
    align_face,
    detect_faces,
    feather_mask,
    paste_face,
    similarity_transform,
)


def test_similarity_transform_recovers_a_known_transform():
    angle, scale, t = np.deg2rad(12.0), 1.7, np.array([23.0, -9.5])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = CANONICAL_LANDMARKS_128 + np.array([5.0, 3.0])
    dst = src @ rot.T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:2, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:2, 2], t, atol=1e-9)


def test_similarity_transform_rejects_degenerate_points():
    with pytest.raises(ValueError, match="degenerate"):
        similarity_transform(np.zeros((5, 2)), CANONICAL_LANDMARKS_128)


def test_feather_mask_is_zero_on_the_border_and_one_inside():
    m = feather_mask(128)
    assert m.shape == (128, 128)
    assert m[0].max() == 0 and m[:, -1].max() == 0 and m[1].max() == 0
    assert m[40:88, 40:88].min() == 1.0
    row = m[64, :64]
    assert np.all(np.diff(row) >= 0)


def test_paste_face_changes_nothing_outside_the_mask():
    rng = np.random.default_rng(0)
    canvas = rng.integers(0, 256, (200, 260, 3), dtype=np.uint8)
    sr = np.full((128, 128, 3), (10, 200, 30), dtype=np.uint8)
    # a face of about 60 px, rotated by 20 degrees, centred at (120, 90)
    a, s = np.deg2rad(20.0), 128 / 60
    to_crop = np.array([[s * np.cos(a), s * np.sin(a), 0], [-s * np.sin(a), s * np.cos(a), 0], [0, 0, 1]])
    to_crop[:2, 2] = np.array([64, 64]) - to_crop[:2, :2] @ np.array([120, 90])
    out, mask = paste_face(canvas, sr, to_crop)
    assert out.shape == canvas.shape and out.dtype == np.uint8
    outside = mask == 0
    assert outside.sum() > 0.8 * outside.size
    np.testing.assert_array_equal(out[outside], canvas[outside])
    inside = mask >= 0.999
    assert inside.sum() > 0.3 * 60 * 60
    assert np.abs(out[inside].astype(int) - np.array([10, 200, 30])).max() <= 1
    # the mask never leaves the crop's square as warped into the canvas
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys, np.ones_like(xs)], 1).astype(float) @ to_crop.T
    assert pts[:, :2].min() >= 0 and pts[:, :2].max() <= 128


@pytest.fixture(scope="module")
def two_face_photo(mini_dir):
    rng = np.random.default_rng(1)
    bg = (rng.integers(0, 85, (300, 420, 3)) + np.array([60, 90, 40])).astype(np.uint8)
    photo = Image.fromarray(bg)
    placed = [(30, 60, 140, 10), (250, 90, 120, 11)]
    for x, y, size, face_id in placed:
        with Image.open(mini_dir / "CelebA-HQ-img" / f"{face_id}.jpg") as im:
            photo.paste(im.convert("RGB").resize((size, size), Image.BICUBIC), (x, y))
    return photo, placed


@pytest.mark.mini
def test_mtcnn_finds_both_faces_and_alignment_matches_the_training_framing(two_face_photo):
    photo, placed = two_face_photo
    found = detect_faces(photo)
    assert len(found) == 2
    for face, (x, y, size, face_id) in zip(found, placed):
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        assert x < cx < x + size and y < cy < y + size
        aligned = align_face(photo, face, 128)
        assert aligned.crop.size == (128, 128)
        # The face was pasted as its 128x128 CelebA-HQ framing scaled by size/128 at (x, y): the
        # alignment should undo exactly that, up to one face's landmark spread (a few px).
        m = aligned.to_crop
        scale = np.sqrt(abs(np.linalg.det(m[:2, :2])))
        rotation = np.degrees(np.arctan2(m[1, 0], m[0, 0]))
        assert abs(scale / (128 / size) - 1) < 0.1, f"face {face_id}: scale {scale:.3f} vs {128 / size:.3f}"
        assert abs(rotation) < 5
        for px, py in [(0.3, 0.4), (0.7, 0.4), (0.5, 0.75)]:
            ideal = np.array([px * 128, py * 128])
            got = (m @ np.array([x + px * size, y + py * size, 1.0]))[:2]
            assert np.linalg.norm(got - ideal) < 8, f"face {face_id}: {got} vs {ideal}"


def test_no_face_in_a_plain_image():
    assert detect_faces(Image.new("RGB", (160, 120), (90, 120, 30))) == []


def test_missing_detector_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)
    monkeypatch.setattr(faces, "_DETECTORS", {})
    with pytest.raises(DetectorUnavailableError, match="pip install --no-deps facenet-pytorch==2.6.0"):
        detect_faces(Image.new("RGB", (64, 64)))
