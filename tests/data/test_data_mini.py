"""Acceptance on the 750 real faces of ../shared: every face through the three stages, parsing
channels equal to their part masks pixel for pixel at 512."""

from __future__ import annotations

import numpy as np
import pytest
from demo_params import demo_download, demo_downscale, demo_merge
from PIL import Image

from facesr.data import load_split
from facesr.data.download import download
from facesr.data.downscale import downscale
from facesr.data.layout import mask_path
from facesr.data.merge import merge_masks, read_png16, unpack_bits

PARTS = ["skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip", "l_ear", "r_ear"]


@pytest.mark.slow
@pytest.mark.mini
def test_mini_set_gives_750_triples_with_exact_parsing(mini_dir, tmp_path):
    download(tmp_path / "raw", **demo_download(source="folder", folder=str(mini_dir)))
    m = merge_masks(tmp_path / "raw", tmp_path / "merged", parts=PARTS, **demo_merge(workers=2))
    assert m == {"images": 750, "skipped": 0, "out": str(tmp_path / "merged")}
    root = tmp_path / "raw" / "CelebAMask-HQ"
    for idx in range(750):
        planes = unpack_bits(read_png16(tmp_path / "merged" / f"{idx}.png"), len(PARTS))
        for c, part in enumerate(PARTS):
            p = mask_path(root, idx, part)
            expected = np.asarray(Image.open(p)) > 127 if p.exists() else np.zeros((512, 512), bool)
            assert np.array_equal(planes[c].astype(bool), expected), (idx, part)
    s = downscale(tmp_path / "raw", tmp_path / "merged", tmp_path / "prep", **demo_downscale(workers=2))
    assert s["splits"] == {"train": 700, "val": 25, "test": 25}
    ids = []
    for split in ("train", "val", "test"):
        a = load_split(tmp_path / "prep", split)
        ids += a["ids"].tolist()
        # the soft map's 0 and 255 are exactly where the 4x4 block is all outside / all inside
        assert a["parsing"][:, 0].max() == 255 and a["hr"].std() > 30
    assert sorted(ids) == list(range(750))
