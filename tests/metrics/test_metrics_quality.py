"""PSNR/SSIM agree with skimage, both protocols, on bicubic x8 of real faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_helpers import to_tensor
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from facesr.metrics import MetricsError, psnr, quantize, rgb_to_y, ssim

SK = dict(data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def y_numpy(img: np.ndarray) -> np.ndarray:
    """BT.601 Y (16-235) of RGB uint8, unrounded, 8-pixel crop: the literature protocol, built by hand."""
    f = img.astype(np.float64)
    y = 16.0 + (65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]) / 255.0
    return y[8:-8, 8:-8]


@pytest.mark.mini
def test_rgb_protocol_matches_skimage(bicubic_faces):
    sr, hr = bicubic_faces
    ours_p = psnr(to_tensor(sr), to_tensor(hr), "rgb").numpy()
    ours_s = ssim(to_tensor(sr), to_tensor(hr), "rgb").numpy()
    ref_p = [peak_signal_noise_ratio(h, s, data_range=255) for s, h in zip(sr, hr)]
    ref_s = [structural_similarity(h, s, channel_axis=-1, **SK) for s, h in zip(sr, hr)]
    np.testing.assert_allclose(ours_p, ref_p, atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours_s, ref_s, atol=1e-4, rtol=0)
    # bicubic x8 of real faces: far from perfect, far from noise (SPEC: about 22 dB)
    assert 19.0 < ours_p.mean() < 25.0 and 0.4 < ours_s.mean() < 0.8


@pytest.mark.mini
def test_y_protocol_matches_skimage(bicubic_faces):
    sr, hr = bicubic_faces
    ours_p = psnr(to_tensor(sr), to_tensor(hr), "y").numpy()
    ours_s = ssim(to_tensor(sr), to_tensor(hr), "y").numpy()
    ref_p = [peak_signal_noise_ratio(y_numpy(h), y_numpy(s), data_range=255) for s, h in zip(sr, hr)]
    ref_s = [structural_similarity(y_numpy(h), y_numpy(s), **SK) for s, h in zip(sr, hr)]
    np.testing.assert_allclose(ours_p, ref_p, atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours_s, ref_s, atol=1e-4, rtol=0)
    # the protocols really differ (Y, crop): they must not return the RGB numbers
    assert np.abs(ours_p - psnr(to_tensor(sr), to_tensor(hr), "rgb").numpy()).max() > 0.1


def test_ssim_matches_skimage_on_odd_sizes_and_extremes():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, size=(2, 37, 23, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, size=a.shape), 0, 255).astype(np.uint8)
    b[1] = 255 - a[1]  # anti-correlated: SSIM near or below 0
    ours = ssim(to_tensor(a), to_tensor(b)).numpy()
    ref = [structural_similarity(x, y, channel_axis=-1, **SK) for x, y in zip(a, b)]
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


def test_inputs_are_quantised_like_saved_images():
    x = torch.full((1, 3, 32, 32), 0.5)
    # 0.5 * 255 = 127.5 rounds to 128 (half to even); 0.5 + 0.4/255 still rounds to 128 -> identical
    assert torch.isinf(psnr(x, x + 0.4 / 255)).all()
    assert quantize(torch.tensor([-0.2, 1.3, 0.5])).tolist() == [0.0, 255.0, 128.0]
    assert abs(ssim(x, x + 0.4 / 255).item() - 1.0) < 1e-9


def test_y_of_white_and_black_is_studio_swing():
    q = torch.tensor([0.0, 255.0], dtype=torch.float64).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    assert rgb_to_y(q).flatten().tolist() == pytest.approx([16.0, 235.0])


@pytest.mark.parametrize(
    "bad",
    [lambda x: x[:, :2], lambda x: x[0], lambda x: x[..., :-1]],
    ids=["two-channels", "no-batch", "size-mismatch"],
)
def test_bad_shapes_raise_metrics_error(bad):
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(MetricsError):
        psnr(bad(x), x)
    with pytest.raises(MetricsError):
        ssim(bad(x), x)


def test_unknown_protocol_and_too_small_for_crop():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(MetricsError, match="protocol"):
        psnr(x, x, "ycbcr")
    with pytest.raises(MetricsError, match="crop"):
        ssim(x, x, "y")


@pytest.mark.mini
def test_sharpness_orders_blur_hr_and_noise(bicubic_faces):
    from facesr.metrics import sharpness

    sr, hr = bicubic_faces
    hr_t = to_tensor(hr[:3])
    blurred = to_tensor(sr[:3])  # bicubic x8 of the LR: the blur an MSE model starts from
    noisy = (hr_t + 0.05 * torch.randn(hr_t.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert torch.allclose(sharpness(hr_t, hr_t), torch.ones(3, dtype=torch.float64))
    assert (sharpness(blurred, hr_t) < 0.5).all()
    assert (sharpness(noisy, hr_t) > 1.5).all()
