"""merge_masks + downscale + FaceSRDataset on synthetic faces: exactness, format, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from demo_params import REPO, demo_downscale, demo_merge
from PIL import Image

from facesr.config import load_section
from facesr.data import DataError, FaceSRDataset, load_split, read_manifest
from facesr.data.dataset import mirror_permutation
from facesr.data.downscale import area_downsample, area_from_bits, downscale, resize_rgb, split_ids
from facesr.data.layout import image_path, mask_path
from facesr.data.merge import merge_masks, read_png16, unpack_bits

PARTS = ["skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip", "l_ear", "r_ear"]


def test_merged_bits_equal_the_part_masks_and_missing_parts_are_empty(raw, tmp_path):
    (mask_path(raw / "CelebAMask-HQ", 2, "nose")).unlink()
    s = merge_masks(raw, tmp_path / "merged", parts=PARTS, **demo_merge(workers=2))
    assert s["images"] == 6
    m = json.loads((tmp_path / "merged" / "manifest.json").read_text())
    assert m["ids"] == list(range(6)) and m["parts"] == PARTS
    for idx in m["ids"]:
        planes = unpack_bits(read_png16(tmp_path / "merged" / f"{idx}.png"), len(PARTS))
        for c, part in enumerate(PARTS):
            p = mask_path(raw / "CelebAMask-HQ", idx, part)
            expected = np.asarray(Image.open(p)) > 127 if p.exists() else np.zeros((512, 512), bool)
            np.testing.assert_array_equal(planes[c].astype(bool), expected, err_msg=f"{idx} {part}")
    assert not unpack_bits(read_png16(tmp_path / "merged" / "2.png"), len(PARTS))[PARTS.index("nose")].any()


def test_overlapping_masks_keep_both_channels(raw, tmp_path):
    root = raw / "CelebAMask-HQ"
    skin = np.asarray(Image.open(mask_path(root, 0, "skin")))
    Image.fromarray(skin).save(mask_path(root, 0, "nose"))  # nose == skin: full overlap
    merge_masks(raw, tmp_path / "merged", parts=PARTS, **demo_merge(workers=1))
    planes = unpack_bits(read_png16(tmp_path / "merged" / "0.png"), len(PARTS))
    assert (planes[0] == planes[PARTS.index("nose")]).all() and planes[0].any()


def test_downscale_format_values_and_split(raw, tmp_path):
    merge_masks(raw, tmp_path / "merged", parts=PARTS, **demo_merge(workers=2))
    s = downscale(raw, tmp_path / "merged", tmp_path / "prep", **demo_downscale(workers=2))
    assert s["splits"] == {"train": 4, "val": 1, "test": 1}
    man = read_manifest(tmp_path / "prep")
    assert man["parts"] == PARTS and man["kernel"] == "bicubic_aa"
    ids = []
    for split in ("train", "val", "test"):
        a = load_split(tmp_path / "prep", split)
        assert isinstance(a["hr"], np.memmap)
        assert a["hr"].dtype == np.uint8 and a["hr"].shape[1:] == (128, 128, 3)
        assert a["lr"].shape[1:] == (16, 16, 3) and a["parsing"].shape[1:] == (11, 128, 128)
        assert a["ids"].dtype == np.int64
        ids += a["ids"].tolist()
        for row, idx in enumerate(a["ids"]):
            img = np.asarray(Image.open(image_path(raw / "CelebAMask-HQ", int(idx))))
            hr = np.asarray(Image.fromarray(img).resize((128, 128), Image.BICUBIC))
            np.testing.assert_array_equal(a["hr"][row], hr)
            np.testing.assert_array_equal(a["lr"][row], np.asarray(Image.fromarray(hr).resize((16, 16), Image.BICUBIC)))
            skin = np.asarray(Image.open(mask_path(raw / "CelebAMask-HQ", int(idx), "skin"))) > 127
            frac = skin.reshape(128, 4, 128, 4).mean(axis=(1, 3))
            np.testing.assert_array_equal(a["parsing"][row, 0], np.floor(frac * 255 + 0.5).astype(np.uint8))
    assert ids == list(range(6))  # thesis split: sorted ids, train first, test last


def test_bit_field_area_average_equals_the_plain_one():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 1 << 11, (512, 512)).astype(np.uint16)
    bits[:64] = (1 << 11) - 1  # full blocks: the count 16 must not spill into the next field
    np.testing.assert_array_equal(area_from_bits(bits, 11, 128), area_downsample(unpack_bits(bits, 11), 128))
    np.testing.assert_array_equal(area_from_bits(bits, 11, 64), area_downsample(unpack_bits(bits, 11), 64))


def test_plain_bicubic_kernel_differs_from_antialiased():
    img = np.random.default_rng(1).integers(0, 256, (128, 128, 3)).astype(np.uint8)
    aa, plain = resize_rgb(img, 16, "bicubic_aa"), resize_rgb(img, 16, "bicubic")
    assert aa.shape == plain.shape == (16, 16, 3)
    assert plain.astype(float).std() > aa.astype(float).std()  # aliasing keeps the noise


def test_plain_bicubic_takes_a_read_only_image_without_warnings():
    import warnings

    img = np.asarray(Image.fromarray(np.zeros((64, 64, 3), np.uint8)))  # what decoding gives: read-only
    assert not img.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resize_rgb(img, 8, "bicubic").shape == (8, 8, 3)


def test_two_runs_are_byte_identical_whatever_the_worker_count(raw, tmp_path):
    outs = []
    for k, workers in enumerate((1, 2)):
        merge_masks(raw, tmp_path / f"m{k}", parts=PARTS, **demo_merge(workers=workers))
        downscale(raw, tmp_path / f"m{k}", tmp_path / f"p{k}", **demo_downscale(workers=workers))
        outs.append({p.relative_to(tmp_path / f"p{k}"): p.read_bytes()
                     for p in sorted((tmp_path / f"p{k}").rglob("*")) if p.is_file()})
        outs[-1].update({("m", p.name): p.read_bytes() for p in sorted((tmp_path / f"m{k}").iterdir())})
    assert outs[0] == outs[1]


def test_thesis_split_proportions():
    s = split_ids(list(range(30000)), "thesis")
    assert [len(s[k]) for k in ("train", "val", "test")] == [28000, 1000, 1000]
    assert s["test"][0] == 29000
    s = split_ids(list(range(750))[::-1], "thesis")
    assert [len(s[k]) for k in ("train", "val", "test")] == [700, 25, 25]
    assert [len(v) for v in split_ids([5, 1, 9], "thesis").values()] == [1, 1, 1]


def test_counts_split_holds_out_the_last_faces_for_test():
    s = split_ids(list(range(750))[::-1], "counts", counts={"train": 600, "val": 50, "test": 100})
    assert s == {"train": list(range(600)), "val": list(range(600, 650)), "test": list(range(650, 750))}
    # fewer train faces: the same val and test faces, the ones between unused
    s = split_ids(list(range(750)), "counts", counts={"train": 300, "val": 50, "test": 100})
    assert s["train"] == list(range(300)) and s["test"] == list(range(650, 750)) and s["val"][0] == 600


@pytest.mark.parametrize("n, method, counts, message", [
    (750, "counts", {"train": 700, "val": 50, "test": 100},
     r"split_counts: train 700 \+ val 50 \+ test 100 = 850 faces, more than the 750 there are"),
    (10, "counts", {"train": 8, "val": 0, "test": 2}, r"split_counts\.val: expected an integer >= 1, got 0"),
    (10, "counts", {"train": 8, "test": 2}, r"split_counts: expected a mapping \{train: N, val: N, test: N\}"),
    (10, "counts", None, r"split_counts: expected a mapping"),
    (10, "thesis", {"train": 8, "val": 1, "test": 1}, r"split_counts: read only by split: counts \(split is 'thesis'\)"),
])
def test_bad_split_counts_name_the_counts(n, method, counts, message):
    with pytest.raises(DataError, match=message):
        split_ids(list(range(n)), method, counts=counts)


def test_split_counts_through_downscale_and_an_empty_split_is_an_error(raw, tmp_path):
    merge_masks(raw, tmp_path / "merged", parts=PARTS, **demo_merge(workers=1))
    s = downscale(raw, tmp_path / "merged", tmp_path / "prep",
                  **demo_downscale(workers=1, split="counts", split_counts={"train": 3, "val": 1, "test": 2}))
    assert s["splits"] == {"train": 3, "val": 1, "test": 2}
    manifest = json.loads((tmp_path / "prep" / "manifest.json").read_text())
    assert manifest["split"] == "counts" and manifest["split_counts"] == {"train": 3, "val": 1, "test": 2}
    assert np.load(tmp_path / "prep" / "test" / "ids.npy").tolist() == [4, 5]
    with pytest.raises(DataError, match=r"more than the 6 there are"):
        downscale(raw, tmp_path / "merged", tmp_path / "p2",
                  **demo_downscale(workers=1, split="counts", split_counts={"train": 4, "val": 1, "test": 2}))
    # 2 faces: the thesis proportions give no val or test face (used to be 2/0/0, silently)
    with pytest.raises(DataError, match=r"2 faces, split 'thesis': the split leaves val and test empty "
                                        r"\(train 2, val 0, test 0\)"):
        downscale(raw, tmp_path / "merged", tmp_path / "p3", **demo_downscale(workers=1), limit=2)
    assert not (tmp_path / "p2").exists() and not (tmp_path / "p3").exists()


def test_official_split_uses_the_mapping_and_needs_it(tmp_path):
    mapping = tmp_path / "CelebA-HQ-to-CelebA-mapping.txt"
    mapping.write_text("idx         orig_idx    orig_file\n0 100 000101.jpg\n1 162770 162771.jpg\n"
                       "2 182636 182637.jpg\n3 182637 182638.jpg\n")
    assert split_ids([0, 1, 2, 3], "official", mapping) == {"train": [0], "val": [1, 2], "test": [3]}
    with pytest.raises(DataError, match="mapping"):
        split_ids([0], "official", tmp_path / "absent.txt")
    with pytest.raises(DataError, match="no entry for id"):
        split_ids([0, 7], "official", mapping)


def test_dataset_items_and_flip_swaps_left_right(prepared_synthetic):
    ds = FaceSRDataset(prepared_synthetic, "train")
    assert len(ds) == 22
    item = ds[3]
    assert item["lr"].shape == (3, 16, 16) and item["hr"].shape == (3, 128, 128)
    assert item["parsing"].shape == (11, 128, 128) and item["lr"].dtype == torch.float32
    assert 0 <= item["hr"].min() and item["hr"].max() <= 1 and isinstance(item["id"], int)
    perm = mirror_permutation(ds.parts)
    assert [ds.parts[i] for i in perm] == ["skin", "r_brow", "l_brow", "r_eye", "l_eye", "nose", "mouth",
                                            "u_lip", "l_lip", "r_ear", "l_ear"]
    flipped = FaceSRDataset(prepared_synthetic, "train", hflip=True)
    torch.manual_seed(0)
    items = [flipped[3] for _ in range(12)]
    mirrored = [it for it in items if not torch.equal(it["hr"], item["hr"])]
    assert 0 < len(mirrored) < 12
    f = mirrored[0]
    assert torch.equal(f["hr"], item["hr"].flip(-1)) and torch.equal(f["lr"], item["lr"].flip(-1))
    le, re = ds.parts.index("l_eye"), ds.parts.index("r_eye")
    assert torch.equal(f["parsing"][le], item["parsing"][re].flip(-1))
    assert torch.equal(f["parsing"][0], item["parsing"][0].flip(-1))
    with pytest.raises(IndexError):
        ds[22]


def test_missing_split_or_folder_is_a_clear_error(prepared_synthetic, tmp_path):
    with pytest.raises(DataError, match="no split 'nope'"):
        FaceSRDataset(prepared_synthetic, "nope")
    with pytest.raises(DataError, match="manifest.json: not found"):
        load_split(tmp_path, "train")


def test_the_seeds_profile_holds_out_100_of_the_750_mini_faces_and_the_others_keep_theirs():
    for profile, sizes in (("mini-cpu-seeds", [600, 50, 100]), ("mini-cpu", [700, 25, 25]), ("demo", [224, 8, 8])):
        p = demo_downscale() if profile == "demo" else load_section(REPO / "params.yaml", "downscale", profile=profile)
        n = 240 if profile == "demo" else 750
        s = split_ids(list(range(n)), p["split"], counts=p["split_counts"])
        assert [len(s[k]) for k in ("train", "val", "test")] == sizes, profile
