"""facesr.inference.images: the decoding policy for every bad input of issue 7."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facesr.inference import BadImageError, read_image


def test_read_image_policy_per_bad_input(bad_inputs):
    for key, words in [("text", "not an image"), ("empty", "empty file"), ("truncated", "truncated"),
                       ("bomb", "decompression bomb"), ("float", "32-bit float")]:
        with pytest.raises(BadImageError) as exc:
            read_image(bad_inputs[key])
        assert str(bad_inputs[key]) in str(exc.value) and words in str(exc.value), str(exc.value)
    sixteen = read_image(bad_inputs["sixteen"])
    assert sixteen.image.mode == "RGB" and any("16-bit" in n for n in sixteen.notes)
    # 16 -> 8 bits keeps the grey levels (x*257 / 257 = x), not a clipped or shifted copy
    with Image.open(bad_inputs["good"]) as im:
        grey = np.asarray(im.convert("L"))
    np.testing.assert_array_equal(np.asarray(sixteen.image)[..., 0], grey)
    assert any("CMYK" in n for n in read_image(bad_inputs["cmyk"]).notes)
    assert any("palette" in n for n in read_image(bad_inputs["palette"]).notes)
    with pytest.raises(BadImageError, match="decompression bomb"):
        read_image(bad_inputs["good"], max_pixels=32 * 32)
