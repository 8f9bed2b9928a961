"""SRGAN discriminator (thesis Table 3.4), returning logits."""

from __future__ import annotations

import torch
from torch import nn

from facesr.models.registry import ModelConfigError, register_model
from facesr.models.srresnet import check_positive

# (output channels as a multiple of num_feat, stride) of the seven conv-BN-LeakyReLU blocks
_BLOCKS = ((1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2))


@register_model("discriminator")
class Discriminator(nn.Module):
    """Image (B, num_in_ch, input_size, input_size) -> real/fake logits (B, 1).

    conv3x3 (num_feat) + LeakyReLU(0.2); seven conv3x3-BN-LeakyReLU blocks (num_feat x 1 s2, 2 s1,
    2 s2, 4 s1, 4 s2, 8 s1, 8 s2) -> (8 num_feat) x input_size/16 squared (8x8x512 at the defaults)
    -> Linear 1024 -> LeakyReLU(0.2) -> Linear 1. The thesis' final sigmoid is left to the loss
    (BCE-with-logits is the numerically stable form of the same thing).

    Args:
        num_in_ch (int): Channels of the input image. Default: 3.
        num_feat (int): Channels of the first conv; blocks use 1, 2, 4 and 8 times it. Default: 64.
        input_size (int): Height = width of the input, a multiple of 16. Default: 128.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128):
        super().__init__()
        check_positive("discriminator", num_in_ch=num_in_ch, num_feat=num_feat, input_size=input_size)
        if input_size % 16:
            raise ModelConfigError(f"discriminator: input_size must be a multiple of 16, got {input_size}")
        self.num_in_ch = num_in_ch
        self.input_size = input_size
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)]
        in_ch = num_feat
        for mult, stride in _BLOCKS:
            out_ch = mult * num_feat
            layers += [nn.Conv2d(in_ch, out_ch, 3, stride, 1), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2, inplace=True)]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        side = input_size // 16
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(in_ch * side * side, 1024), nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1)
        )

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        expected = (self.num_in_ch, self.input_size, self.input_size)
        if img.dim() != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(
                f"discriminator: expected input (B, {expected[0]}, {expected[1]}, {expected[2]}), got {tuple(img.shape)}"
            )
        return self.classifier(self.features(img))
