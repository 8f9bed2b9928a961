"""Metrics of SPEC.md: PSNR/SSIM under the thesis (RGB) and literature (Y, crop 8) protocols, LPIPS,
PSNR per face region, mean IoU of parsing maps, and the sharpness ratio (high-frequency energy of
SR over HR, to tell the GAN's detail from the MSE models' blur); ``score.py`` is the ``facesr score`` command.

Inputs are float [0, 1] ``(B, 3, H, W)`` and are quantised to uint8 first, as saved images would be.
``spec.py`` names, labels and formats every metric the stages and the report show.
"""

from __future__ import annotations

# Each module below imports torch inside its functions only, so that `facesr --help` and the report,
# which import this package, stay fast.
from facesr.metrics.perceptual import LPIPS
from facesr.metrics.quality import MetricsError, finite_mean, psnr, quantize, rgb_to_y, sharpness, ssim
from facesr.metrics.regions import PARTS, REGIONS, parsing_iou, region_psnr
from facesr.metrics.spec import HEADLINE, METRICS, Metric

__all__ = [
    "HEADLINE",
    "LPIPS",
    "METRICS",
    "PARTS",
    "REGIONS",
    "Metric",
    "MetricsError",
    "compute_metrics",
    "finite_mean",
    "parsing_iou",
    "psnr",
    "quantize",
    "region_psnr",
    "rgb_to_y",
    "sharpness",
    "ssim",
]


def compute_metrics(sr, hr, *, lpips=None, parsing=None, pred_parsing=None, parts=None) -> dict:
    """Every metric of one batch: ``{name: Tensor (B,)}`` (float64).

    Keys: every spec entry with a ``compute`` function (``psnr ssim psnr_y ssim_y sharpness``, in
    the spec's order); ``lpips`` when an :class:`LPIPS` (or any callable ``(sr, hr) -> (B,)``) is
    given; ``psnr_<region>`` (eyes, brows, nose, mouth, skin; NaN where a face lacks the region)
    when the HR ``parsing`` maps are given, with ``parts`` naming their channels (default: SPEC.md's
    11); ``parsing_miou`` when ``pred_parsing`` is given as well.
    """
    import torch

    out = {}
    for m in METRICS.values():
        if m.compute is not None:
            out[m.name] = m.compute(sr, hr, *m.args)
    if lpips is not None:
        out["lpips"] = lpips(sr, hr).to("cpu").double()
    if parsing is not None:
        for region, values in region_psnr(sr, hr, parsing, parts).items():
            out[f"psnr_{region}"] = values
        if pred_parsing is not None:
            out["parsing_miou"] = parsing_iou(pred_parsing, parsing)
    elif pred_parsing is not None:
        raise MetricsError("compute_metrics: pred_parsing needs the HR parsing maps (parsing=...) to compare with")
    return {k: v.detach().to("cpu", torch.float64) for k, v in out.items()}
