"""Region PSNR and parsing mIoU on hand-made tensors with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from facesr.metrics import PARTS, MetricsError, compute_metrics, parsing_iou, region_psnr
from facesr.metrics.quality import finite_mean


def _maps(b=1, size=32):
    return torch.zeros(b, len(PARTS), size, size)


def test_region_psnr_counts_only_region_pixels():
    hr = torch.zeros(1, 3, 32, 32)
    sr = hr.clone()
    parsing = _maps()
    parsing[0, PARTS.index("l_eye"), 0:4, 0:4] = 1.0
    parsing[0, PARTS.index("r_eye"), 0:4, 4:8] = 0.6  # > 0.5: in
    parsing[0, PARTS.index("nose"), 10:12, 10:12] = 0.4  # < 0.5: out, so nose is empty
    parsing[0, PARTS.index("skin"), :, :] = 1.0
    parsing[0, PARTS.index("u_lip"), 20:22, 0:32] = 1.0
    # error of 51 (= 0.2 * 255) on half of the eye pixels, on every channel
    sr[0, :, 0:4, 0:4] = 0.2
    # an error outside every region but skin must not move the eye PSNR
    sr[0, :, 30:32, 30:32] = 1.0
    out = region_psnr(sr, hr, parsing, PARTS)
    assert set(out) == {"eyes", "brows", "nose", "mouth", "skin"}
    assert out["eyes"].item() == pytest.approx(10 * math.log10(255**2 / (51**2 / 2)))
    assert math.isnan(out["nose"].item()) and math.isnan(out["brows"].item())
    assert math.isinf(out["mouth"].item())  # region present, no error
    # skin excludes the eyes (32 px) and the lip row (64 px): 1024 - 96 px, 4 of them wrong by 255
    assert out["skin"].item() == pytest.approx(10 * math.log10(255**2 / (4 * 255**2 / (1024 - 96))))


def test_region_psnr_uses_parts_order():
    hr, sr = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    sr[0, :, 0, 0] = 1.0
    parsing = torch.zeros(1, 2, 8, 8)
    parsing[0, 1, 0, 0] = 1.0  # channel 1 is "nose" in this custom order
    out = region_psnr(sr, hr, parsing, ["skin", "nose"])
    assert out["nose"].item() == pytest.approx(0.0)  # mse 255^2 -> 0 dB
    assert set(out) == {"skin", "nose"}


def test_region_psnr_rejects_channel_mismatch():
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(MetricsError, match="channels"):
        region_psnr(x, x, torch.zeros(1, 5, 8, 8), PARTS)
    with pytest.raises(MetricsError, match="match"):
        region_psnr(x, x, torch.zeros(1, 11, 4, 4), PARTS)


def test_parsing_iou_known_answer():
    gt = torch.zeros(2, 3, 4, 4)
    pred = torch.zeros(2, 3, 4, 4)
    gt[0, 0, :2] = 1.0  # 8 px
    pred[0, 0, :1] = 0.9  # 4 px inside: IoU 0.5
    pred[0, 1, 0, 0] = 0.7  # false positive in a channel absent from gt: IoU 0
    # channel 2 empty in both -> not counted; image 0 mean = (0.5 + 0) / 2
    gt[1, 2] = 1.0
    pred[1, 2] = 0.51  # perfect
    iou = parsing_iou(pred, gt)
    assert iou.tolist() == pytest.approx([0.25, 1.0])


def test_parsing_iou_nan_when_nothing_present_and_threshold():
    z = torch.zeros(1, 2, 4, 4)
    assert math.isnan(parsing_iou(z, z).item())
    half = torch.full((1, 1, 4, 4), 0.5)
    assert math.isnan(parsing_iou(half, half).item())  # 0.5 is not > 0.5
    assert parsing_iou(half, half, threshold=0.4).item() == 1.0


def test_compute_metrics_with_parsing_and_nanmean():
    hr = torch.rand(2, 3, 32, 32)
    sr = (hr + 0.05).clamp(0, 1)
    gt = _maps(2)
    gt[0, PARTS.index("nose"), 5:10, 5:10] = 1.0  # face 1 has no nose
    out = compute_metrics(sr, hr, parsing=gt, pred_parsing=gt.clone(), parts=PARTS)
    assert {"psnr_eyes", "psnr_brows", "psnr_nose", "psnr_mouth", "psnr_skin", "parsing_miou"} <= set(out)
    assert math.isnan(out["psnr_nose"][1].item()) and not math.isnan(out["psnr_nose"][0].item())
    assert finite_mean(out["psnr_nose"]) == pytest.approx(out["psnr_nose"][0].item())
    assert out["parsing_miou"][0].item() == 1.0
    with pytest.raises(MetricsError, match="pred_parsing"):
        compute_metrics(sr, hr, pred_parsing=gt)
