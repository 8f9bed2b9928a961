"""LPIPS on real faces: zero on identical images, monotone in noise, bicubic x8 near the thesis' 0.535."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_helpers import to_tensor

from facesr.metrics import LPIPS, compute_metrics


@pytest.fixture(scope="module")
def lpips_alex():
    return LPIPS("alex")


@pytest.mark.mini
def test_identical_images_score_zero(lpips_alex, bicubic_faces):
    _, hr = bicubic_faces
    x = to_tensor(hr[:4])
    assert lpips_alex(x, x).abs().max().item() == 0.0


@pytest.mark.mini
def test_lpips_rises_with_gaussian_noise(lpips_alex, bicubic_faces):
    _, hr = bicubic_faces
    hr = hr[:8]
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(hr.shape)
    means = []
    for sigma in (2, 5, 10, 20):
        noisy = np.clip(np.round(hr + sigma * noise), 0, 255).astype(np.uint8)
        means.append(lpips_alex(to_tensor(noisy), to_tensor(hr)).mean().item())
    assert all(a < b for a, b in zip(means, means[1:])), means
    assert means[0] > 0.0


@pytest.mark.mini
def test_bicubic_x8_lpips_alex_in_thesis_range(lpips_alex, bicubic_faces):
    sr, hr = bicubic_faces
    d = lpips_alex(to_tensor(sr), to_tensor(hr))
    assert d.shape == (len(sr),)
    # thesis 0.5351 on its test set; SPEC measured 0.545 on real CelebAMask-HQ faces
    assert 0.40 <= d.mean().item() <= 0.70, d.mean().item()


@pytest.mark.mini
def test_batching_does_not_change_values(bicubic_faces):
    sr, hr = bicubic_faces
    a, b = to_tensor(sr[:5]), to_tensor(hr[:5])
    whole = LPIPS("alex", batch_size=5)(a, b)
    chunked = LPIPS("alex", batch_size=2)(a, b)
    torch.testing.assert_close(whole, chunked, atol=1e-6, rtol=0)


@pytest.mark.mini
def test_vgg_lpips_is_a_different_metric(bicubic_faces):
    sr, hr = bicubic_faces
    a, b = to_tensor(sr[:3]), to_tensor(hr[:3])
    vgg, alex = LPIPS("vgg")(a, b), LPIPS("alex")(a, b)
    assert (vgg - alex).abs().max().item() > 1e-3
    assert (vgg > 0).all()


@pytest.mark.mini
def test_compute_metrics_keys(lpips_alex, bicubic_faces):
    sr, hr = bicubic_faces
    out = compute_metrics(to_tensor(sr[:2]), to_tensor(hr[:2]), lpips=lpips_alex)
    assert set(out) == {"psnr", "ssim", "psnr_y", "ssim_y", "sharpness", "lpips"}
    assert all(v.shape == (2,) and v.dtype == torch.float64 for v in out.values())
