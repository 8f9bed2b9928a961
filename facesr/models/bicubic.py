"""Bicubic interpolation baseline (the thesis' "Bicubic" row)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facesr.models.output import SROutput
from facesr.models.registry import ModelConfigError, register_model


def bicubic_upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic x`scale` as torch computes it (a=-0.75, align_corners=False, no antialiasing).

    Antialiasing only matters when shrinking; for upsampling torch ignores it, so it stays off.
    """
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False, antialias=False)


@register_model("bicubic")
class Bicubic(nn.Module):
    """LR upsampled by bicubic interpolation; no parameters.

    The output is clamped to [0, 1] in train and eval mode alike: bicubic overshoots at edges, the
    model has nothing to learn, and a clamped tensor is exactly the image that would be saved, so
    metrics on the tensor and on the written PNG agree.

    Args:
        upscale (int): Upsampling factor. Default: 8.
    """

    predicts_parsing = False

    def __init__(self, upscale: int = 8):
        super().__init__()
        if not isinstance(upscale, int) or upscale < 1:
            raise ModelConfigError(f"bicubic: upscale must be a positive integer, got {upscale!r}")
        self.upscale = upscale

    def forward(self, lr: torch.Tensor) -> SROutput:
        return SROutput(bicubic_upsample(lr, self.upscale).clamp(0.0, 1.0))
