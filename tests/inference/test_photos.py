"""facesr.inference.photos: the output size limit of --photo-scale, checked before any detection.
Detection and paste-back on real faces: tests/test_faces_real.py."""

from __future__ import annotations

import pytest
from PIL import Image

import facesr
from facesr.cli import main as cli_main


def test_photo_scale_is_capped_at_the_input_pixel_limit(tmp_path, capsys):
    """--photo-scale had no bound; the enlarged photo now has the limit inputs have (Pillow's
    MAX_IMAGE_PIXELS, about 89 M pixels), checked before any detection."""
    photo = tmp_path / "photo.png"
    Image.new("RGB", (420, 300), (90, 80, 70)).save(photo)
    out = tmp_path / "out"
    # 30x: 12600 x 9000 = 113 M pixels; the largest scale that fits is 26 (10920 x 7800 = 85 M)
    rc = cli_main(["upscale", str(photo), "-o", str(out), "--faces", "auto", "--photo-scale", "30",
                   "--model", "bicubic", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1
    line = next(ln for ln in err.splitlines() if str(photo) in ln)
    assert "12600x9000" in line and f"limit of {Image.MAX_IMAGE_PIXELS}" in line and "at most 26" in line, line
    assert not (out / "photo.png").exists()
    up = facesr.load("bicubic", device="cpu")
    with Image.open(photo) as im:
        with pytest.raises(facesr.inference.OutputTooLargeError, match="at most 2"):
            facesr.inference.upscale_photo(im, up, photo_scale=3, max_pixels=420 * 300 * 4)
