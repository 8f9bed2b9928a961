"""PSNR and SSIM under the two protocols of SPEC.md, batched in torch.

Both protocols start from the images as they would be saved: float [0, 1] -> uint8 by round + clamp.

- ``rgb`` (the thesis): PSNR over all RGB uint8 values, data range 255, no crop; SSIM equal to
  ``skimage.metrics.structural_similarity(a, b, channel_axis=-1, data_range=255, gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False)``: the mean over channels of the mean SSIM map.
- ``y`` (DIC, SPARNet, BasicSR): BT.601 luma ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with
  R, G, B in [0, 255] (range 16-235, unrounded as in BasicSR's ``bgr2ycbcr(y_only=True)``), an 8-pixel
  border crop, then the same PSNR (range 255) and gaussian SSIM on the single channel.

skimage's gaussian SSIM filters with ``scipy.ndimage.gaussian_filter(sigma=1.5, truncate=3.5)``: an
11-tap kernel (radius ``int(3.5 * 1.5 + 0.5) = 5``), mode reflect, and then averages the SSIM map after
cropping ``(11 - 1) // 2 = 5`` pixels per side. The pixels that survive the crop are exactly those whose
11x11 window never reaches the padding, so a "valid" convolution reproduces it without any padding.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

# torch loads inside each function: the metric spec imports these functions, and `facesr --help` and
# the report read the spec without paying for torch.
if TYPE_CHECKING:
    import torch

PROTOCOLS = ("rgb", "y")
Y_CROP = 8
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0
# BT.601 "studio swing" luma on 8-bit RGB, as MATLAB rgb2ycbcr / BasicSR compute it.
_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
_Y_OFFSET = 16.0


class MetricsError(ValueError):
    """Inputs a metric cannot score (shape, range, protocol); the message says which and why."""


def check_pair(sr: torch.Tensor, hr: torch.Tensor, name: str = "metric") -> None:
    import torch

    for label, t in (("sr", sr), ("hr", hr)):
        if not isinstance(t, torch.Tensor):
            raise MetricsError(f"{name}: {label} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] != 3:
            raise MetricsError(f"{name}: {label} must be (B, 3, H, W), got {tuple(t.shape)}")
    if sr.shape != hr.shape:
        raise MetricsError(f"{name}: sr {tuple(sr.shape)} and hr {tuple(hr.shape)} differ in shape")


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise MetricsError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")


def quantize(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """float [0, 1] -> the uint8 values a saved PNG would hold, as floats in [0, 255] (``dtype``,
    float64 by default).

    float32 holds these integers exactly, but the rounding must see the input's own precision.
    """
    import torch

    return (x.detach().to(torch.float64) * 255.0).round_().clamp_(0, 255).to(torch.float64 if dtype is None else dtype)


def rgb_to_y(q: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 255] -> (B, 1, H, W) BT.601 Y in [16, 235] (float64, unrounded)."""
    r, g, b = q[:, 0:1], q[:, 1:2], q[:, 2:3]
    return _Y_OFFSET + _Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b


def _protocol_planes(sr: torch.Tensor, hr: torch.Tensor, protocol: str,
                     dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    _check_protocol(protocol)
    a, b = quantize(sr, dtype), quantize(hr, dtype)
    if protocol == "y":
        if a.shape[-1] <= 2 * Y_CROP or a.shape[-2] <= 2 * Y_CROP:
            raise MetricsError(f"protocol y crops {Y_CROP} px per side; images {tuple(a.shape[-2:])} are too small")
        a = rgb_to_y(a)[..., Y_CROP:-Y_CROP, Y_CROP:-Y_CROP]
        b = rgb_to_y(b)[..., Y_CROP:-Y_CROP, Y_CROP:-Y_CROP]
    return a, b


def psnr(sr: torch.Tensor, hr: torch.Tensor, protocol: str = "rgb") -> torch.Tensor:
    """PSNR per image (B,), float64; ``inf`` where the quantised images are identical."""
    import torch

    check_pair(sr, hr, "psnr")
    a, b = _protocol_planes(sr, hr, protocol)
    mse = (a - b).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(DATA_RANGE**2 / mse)


def sharpness(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """High-frequency energy of SR relative to HR, per image (B,): mean squared 3x3 Laplacian of the
    quantised BT.601 Y, SR over HR. 1 = as much fine detail as the HR face; an MSE-trained model's
    smooth faces sit well below 1; above 1 means more high frequencies than the HR, i.e. noise or
    ringing (LPIPS tells detail from noise). Not a fidelity metric: it says how sharp, not how right."""
    import torch

    check_pair(sr, hr, "sharpness")
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64,
                       device=sr.device).view(1, 1, 3, 3)
    energy = [torch.nn.functional.conv2d(rgb_to_y(quantize(x)), lap).pow(2).flatten(1).mean(dim=1)
              for x in (sr, hr)]
    return energy[0] / energy[1].clamp_min(1e-12)


def gaussian_kernel1d(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> torch.Tensor:
    """scipy.ndimage's gaussian taps: radius int(truncate * sigma + 0.5), normalised to sum 1."""
    import torch

    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _band(n: int, k: torch.Tensor) -> torch.Tensor:
    """(n, n - taps + 1) matrix whose column j holds the taps at rows j..j+taps-1."""
    import torch

    taps = k.numel()
    cols = n - taps + 1
    m = torch.zeros(n, cols, dtype=k.dtype, device=k.device)
    rows = torch.arange(cols, device=k.device)[None, :] + torch.arange(taps, device=k.device)[:, None]
    m[rows, torch.arange(cols, device=k.device).expand(taps, cols)] = k[:, None].expand(taps, cols)
    return m


def _filter_valid(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable gaussian, 'valid' (no padding), on every plane of (..., H, W).

    Two banded matrix products: on a CPU they run several times faster than a depthwise conv2d.
    """
    return _band(x.shape[-2], k).T @ x @ _band(x.shape[-1], k)


def ssim_planes(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean gaussian SSIM per image (B,) of (B, C, H, W) planes in [0, 255], averaged over channels.

    Computed in float32 on a CPU: float64 matrix products are several times slower there, and with the
    shift below float32 agrees with skimage's float64 to about 3e-6 (benchmarks/metrics.md). On a GPU a
    float32 matmul may run as TF32 (10-bit mantissa) when someone enabled it for training, which would
    cost SSIM its third decimal; float64 is cheap there, so it is used instead.
    """
    import torch

    work = torch.float32 if a.device.type == "cpu" else torch.float64
    k = gaussian_kernel1d().to(dtype=work, device=a.device)
    if a.shape[-1] < k.numel() or a.shape[-2] < k.numel():
        raise MetricsError(f"ssim needs images of at least {k.numel()}x{k.numel()}, got {tuple(a.shape[-2:])}")
    # Second moments in float32 lose digits to cancellation (E[x^2] - E[x]^2 near 255^2); shifting both
    # images by the same per-plane constant leaves variances and covariance unchanged and keeps them exact.
    shift = a.mean(dim=(-2, -1), keepdim=True, dtype=torch.float64).to(work)
    x = a.to(work) - shift
    y = b.to(work) - shift
    c = x.shape[1]
    stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # one filter pass for all five moments
    mu_x, mu_y, m_xx, m_yy, m_xy = _filter_valid(stacked, k).split(c, dim=1)
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    ux, uy = mu_x + shift, mu_y + shift
    vx_vy = (m_xx + m_yy).sub_(mu_x * mu_x).sub_(mu_y * mu_y)
    vxy = m_xy.sub_(mu_x * mu_y)
    num = (2 * ux * uy + c1).mul_(vxy.mul_(2).add_(c2))
    den = (ux * ux + uy * uy + c1).mul_(vx_vy.add_(c2))
    return num.div_(den).mean(dim=(-2, -1), dtype=torch.float64).mean(dim=1)


def ssim(sr: torch.Tensor, hr: torch.Tensor, protocol: str = "rgb") -> torch.Tensor:
    """SSIM per image (B,), float64, equal to skimage's gaussian SSIM (see the module docstring)."""
    import torch

    check_pair(sr, hr, "ssim")
    # Y is unrounded; float32 keeps it to ~1e-5 of 235, far below what moves SSIM at 1e-6.
    a, b = _protocol_planes(sr, hr, protocol, torch.float32 if protocol == "rgb" else torch.float64)
    return ssim_planes(a, b)


def finite_mean(values) -> float:
    """Mean that skips NaN (empty regions); NaN when nothing is left."""
    vals = [float(v) for v in values if not math.isnan(float(v))]
    return sum(vals) / len(vals) if vals else float("nan")
