"""Every kind of bad input: `fail` names each file and its problem in one error and writes nothing;
`skip` lists them in skipped.json and goes on with the good faces."""

from __future__ import annotations

import json
import re
import struct
import zlib

import numpy as np
import pytest
from demo_params import demo_downscale, demo_merge
from PIL import Image

from facesr.data import DataError
from facesr.data.downscale import downscale
from facesr.data.layout import image_path, mask_path
from facesr.data.merge import merge_masks

PARTS = ["skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip", "l_ear", "r_ear"]


def _png_bomb(path, side=20000):
    """A real PNG (valid chunks, zeros) that claims side x side 1-bit pixels: a few KB on disk."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\0" * (1 + side // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _damage_masks(root):
    """Damage faces 0-4's masks in one way each; face 5 stays good. Returns {path: problem regex}."""
    bad = {}
    p = mask_path(root, 0, "nose")
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3])
    bad[p] = "truncated"
    p = mask_path(root, 1, "skin")
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    bad[p] = "corrupt|not a readable image|unreadable"
    p = mask_path(root, 2, "l_eye")
    Image.fromarray(np.asarray(Image.open(p)).astype(np.uint16) * 257).save(p)
    bad[p] = "16-bit"
    p = mask_path(root, 3, "u_lip")
    Image.open(p).resize((256, 256)).save(p)
    bad[p] = "256x256, expected 512x512"
    p = mask_path(root, 4, "l_lip")
    _png_bomb(p)
    bad[p] = "decompression bomb"
    return bad


def test_bad_masks_fail_with_every_file_named(raw, tmp_path):
    root = raw / "CelebAMask-HQ"
    bad = _damage_masks(root)
    for part in ("skin", "nose", "hair", "cloth", "neck", "l_eye", "r_eye", "l_brow", "r_brow", "u_lip", "l_lip",
                 "mouth", "l_ear", "r_ear", "eye_g", "hat", "ear_r", "neck_l"):
        mask_path(root, 5, part).unlink(missing_ok=True)
    bad[image_path(root, 5)] = "image without masks"
    (root / "CelebA-HQ-img" / "notes.txt").write_text("x")
    bad[root / "CelebA-HQ-img" / "notes.txt"] = "stray file"
    (root / "CelebAMask-HQ-mask-anno" / "0" / "00000_skin (copy).png").write_bytes(b"x")
    bad[root / "CelebAMask-HQ-mask-anno" / "0" / "00000_skin (copy).png"] = "stray file"
    with pytest.raises(DataError) as exc:
        merge_masks(raw, tmp_path / "merged", parts=PARTS, **demo_merge(workers=2, on_error="fail"))
    lines = str(exc.value).splitlines()
    assert f"{len(bad)} bad input file(s)" in lines[0]
    for path, problem in bad.items():
        hit = [ln for ln in lines if f"{path}:" in ln]
        assert len(hit) == 1, (path, lines)
        assert re.search(problem, hit[0]), (problem, hit[0])
    assert not (tmp_path / "merged").exists() and list(tmp_path.iterdir()) == [raw]


def test_bad_masks_skip_writes_a_report_and_keeps_the_good(raw, tmp_path):
    root = raw / "CelebAMask-HQ"
    bad = _damage_masks(root)
    s = merge_masks(raw, tmp_path / "merged", parts=PARTS, **demo_merge(workers=2, on_error="skip"))
    assert s["images"] == 1
    report = json.loads((tmp_path / "merged" / "skipped.json").read_text())
    assert sorted(r["path"] for r in report["skipped"]) == sorted(str(p) for p in bad)
    assert json.loads((tmp_path / "merged" / "manifest.json").read_text())["ids"] == [5]


@pytest.mark.parametrize("kind,problem", [
    ("truncated", "truncated"),
    ("grayscale", "grayscale"),
    ("cmyk", "CMYK"),
    ("rgba", "RGBA"),
    ("garbage", "not a readable image"),
])
def test_bad_images_are_named_by_downscale(raw, tmp_path, kind, problem):
    root = raw / "CelebAMask-HQ"
    merge_masks(raw, tmp_path / "merged", parts=PARTS, **demo_merge(workers=1))
    p = image_path(root, 2)  # a train face: skipping it leaves 3/1/1 (test_a_skip_that_empties_val...)
    img = Image.open(p).convert("RGB")
    if kind == "truncated":
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    elif kind == "grayscale":
        img.convert("L").save(p, format="JPEG")
    elif kind == "cmyk":
        img.convert("CMYK").save(p, format="JPEG")
    elif kind == "rgba":
        img.convert("RGBA").save(p, format="PNG")  # a PNG behind a .jpg name, as scraped sets have
    else:
        p.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match=f"{p}: .*{problem}"):
        downscale(raw, tmp_path / "merged", tmp_path / "prep", **demo_downscale(workers=2))
    assert not (tmp_path / "prep").exists()
    s = downscale(raw, tmp_path / "merged", tmp_path / "prep", **demo_downscale(workers=2, on_error="skip"))
    assert sum(s["splits"].values()) == 5 and s["skipped"] == 1
    report = json.loads((tmp_path / "prep" / "skipped.json").read_text())["skipped"]
    assert report[0]["path"] == str(p) and problem in report[0]["reason"]
    ids = np.concatenate([np.load(tmp_path / "prep" / sp / "ids.npy") for sp in ("train", "val", "test")])
    assert 2 not in ids.tolist() and len(ids) == 5


def test_a_skip_that_empties_val_is_an_error_naming_the_counts(raw, tmp_path):
    """6 faces split 4/1/1; skipping the one val face used to leave `val 0` silently."""
    merge_masks(raw, tmp_path / "merged", parts=PARTS, **demo_merge(workers=1))
    image_path(raw / "CelebAMask-HQ", 4).write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match=r"1 face\(s\) skipped .*: the split leaves val empty \(train 4, val 0, test 1\)"):
        downscale(raw, tmp_path / "merged", tmp_path / "prep", **demo_downscale(workers=1, on_error="skip"))
    assert not (tmp_path / "prep").exists()


def test_merged_map_changed_after_merging_is_caught(raw, tmp_path):
    merge_masks(raw, tmp_path / "merged", parts=PARTS, **demo_merge(workers=1))
    (tmp_path / "merged" / "1.png").write_bytes((tmp_path / "merged" / "2.png").read_bytes())
    with pytest.raises(DataError, match=r"1\.png: sha256 differs"):
        downscale(raw, tmp_path / "merged", tmp_path / "prep", **demo_downscale(workers=1))


def test_unknown_policy_and_parts_are_rejected(raw, tmp_path):
    with pytest.raises(DataError, match="on_error must be one of"):
        merge_masks(raw, tmp_path / "m", parts=PARTS, **demo_merge(on_error="ignore"))
    with pytest.raises(DataError, match="unknown"):
        merge_masks(raw, tmp_path / "m", parts=["skin", "teeth"], **demo_merge())
