"""SRResNet (Ledig et al., CVPR 2017), the thesis' baseline network."""

from __future__ import annotations

import math

import torch
from torch import nn

from facesr.models.bicubic import bicubic_upsample
from facesr.models.output import SROutput
from facesr.models.registry import ModelConfigError, register_model


def check_upscale(model: str, upscale: int) -> int:
    """Number of x2 PixelShuffle stages for `upscale`; it must be a power of two."""
    if not isinstance(upscale, int) or upscale < 2 or upscale & (upscale - 1):
        raise ModelConfigError(f"{model}: upscale must be a power of two >= 2, got {upscale!r}")
    return int(math.log2(upscale))


def check_positive(model: str, **values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelConfigError(f"{model}: {key} must be a positive integer, got {value!r}")


def check_bool(model: str, **values: bool) -> None:
    for key, value in values.items():
        if not isinstance(value, bool):
            raise ModelConfigError(f"{model}: {key} must be true or false, got {value!r}")


class ResidualBlock(nn.Module):
    """SRResNet residual block: conv3x3-BN-PReLU-conv3x3-BN, plus the identity."""

    def __init__(self, num_feat: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            nn.BatchNorm2d(num_feat),
            nn.PReLU(),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            nn.BatchNorm2d(num_feat),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upsampler(nn.Sequential):
    """log2(upscale) stages of conv3x3 (C -> 4C), PixelShuffle(2), PReLU."""

    def __init__(self, num_feat: int, num_stages: int):
        layers: list[nn.Module] = []
        for _ in range(num_stages):
            layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU()]
        super().__init__(*layers)


class SRResNetTrunk(nn.Module):
    """SRResNet with a pluggable body block; shared by SRResNet and Method 1's SR branch.

    conv9x9 + PReLU -> body blocks -> conv3x3 + BN, global skip -> upsampler -> conv9x9; with
    `image_residual`, plus the bicubic upsampling of the input (the network learns only the detail).
    """

    def __init__(self, num_in_ch: int, num_out_ch: int, num_feat: int, blocks: list[nn.Module], num_stages: int,
                 image_residual: bool = False):
        super().__init__()
        if image_residual and num_in_ch != num_out_ch:
            raise ModelConfigError("image_residual needs as many output channels as input channels")
        self.image_residual = image_residual
        self.scale = 2**num_stages
        self.head = nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 9, 1, 4), nn.PReLU())
        self.body = nn.Sequential(*blocks)
        self.body_tail = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.BatchNorm2d(num_feat))
        self.upsample = Upsampler(num_feat, num_stages)
        self.tail = nn.Conv2d(num_feat, num_out_ch, 9, 1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        feat = feat + self.body_tail(self.body(feat))
        out = self.tail(self.upsample(feat))
        if self.image_residual:
            out = out + bicubic_upsample(x, self.scale)
        return out


@register_model("srresnet")
class SRResNet(nn.Module):
    """SRResNet: LR (B, num_in_ch, h, w) -> SROutput(sr (B, num_out_ch, upscale*h, upscale*w)).

    The output is not clamped (training sees the raw values; metrics quantise to [0, 255]).

    Args:
        num_in_ch (int): Channels of the input. Default: 3.
        num_out_ch (int): Channels of the output. Default: 3.
        num_feat (int): Feature channels of the trunk. Default: 64.
        num_block (int): Residual blocks (conv-BN-PReLU-conv-BN + skip). Default: 16.
        upscale (int): Upsampling factor, a power of two (one PixelShuffle x2 stage each). Default: 8.
        image_residual (bool): Add the bicubic upsampling of the LR to the output, so the network learns
            the residual (VDSR-style). Not in SRResNet or the thesis; it lets small CPU budgets (the
            demo profile) start from bicubic quality instead of a blank image. Default: False.
    """

    predicts_parsing = False

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 8, image_residual: bool = False):
        super().__init__()
        check_bool("srresnet", image_residual=image_residual)
        check_positive("srresnet", num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat,
                       num_block=num_block)
        stages = check_upscale("srresnet", upscale)
        blocks = [ResidualBlock(num_feat) for _ in range(num_block)]
        self.trunk = SRResNetTrunk(num_in_ch, num_out_ch, num_feat, blocks, stages, image_residual)

    def forward(self, lr: torch.Tensor) -> SROutput:
        return SROutput(self.trunk(lr))
