from __future__ import annotations

import numpy as np
from PIL import Image

from facesr.data.layout import RELEASE_PARTS, image_path, mask_path, scan
from facesr.data.synthetic import generate


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files_and_other_seed_differs(tmp_path):
    a = generate(tmp_path / "a", 3, seed=7)
    b = generate(tmp_path / "b", 3, seed=7, workers=2)
    c = generate(tmp_path / "c", 3, seed=8)
    fa, fb = _files(a), _files(b)
    assert fa == fb
    assert fa[image_path(a, 0).relative_to(a)] != _files(c)[image_path(c, 0).relative_to(c)]


def test_layout_masks_binary_disjoint_and_image_textured(synthetic_raw_master):
    s = scan(synthetic_raw_master)
    assert s.ids == list(range(6)) and not s.bad
    for idx in s.ids:
        img = np.asarray(Image.open(image_path(s.root, idx)))
        assert img.shape == (512, 512, 3)
        masks = {}
        for part, path in s.masks[idx].items():
            assert part in RELEASE_PARTS
            with Image.open(path) as im:
                assert im.mode == "L" and im.size == (512, 512)
                m = np.asarray(im)
            assert set(np.unique(m)) <= {0, 255} and m.any()
            masks[part] = m > 127
        for part in ("skin", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "u_lip", "l_lip", "hair"):
            assert part in masks, (idx, part)
        stack = np.stack(list(masks.values()))
        assert stack.sum(0).max() == 1  # one label map, like the release's
        # l_eye is the subject's left: the image's right half
        assert np.nonzero(masks["l_eye"])[1].mean() > np.nonzero(masks["r_eye"])[1].mean()
        # not flat colours: skin has shading and grain, the eyes are darker/contrasty
        skin = img[masks["skin"]].astype(float)
        assert skin.std(0).min() > 5
        lr = np.asarray(Image.fromarray(img).resize((16, 16), Image.BICUBIC)).astype(float)
        assert lr.std() > 15


def test_faces_vary(synthetic_raw_master):
    s = scan(synthetic_raw_master)
    skins = [np.asarray(Image.open(image_path(s.root, i)))[np.asarray(Image.open(mask_path(s.root, i, "skin"))) > 127].mean(0)
             for i in s.ids]
    assert np.ptp(np.array(skins), axis=0).max() > 20
