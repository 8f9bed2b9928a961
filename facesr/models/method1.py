"""Method 1 of the thesis: prior-guided multi-scale channel-attention network (PriorGuidedSR).

Three parts (thesis Fig. 3.1, SPEC.md "Models"):

* SR branch: SRResNet whose residual blocks are `AttentionBlock`s; its last conv gives the 3-channel
  coarse SR image.
* Prior branch (FSRNet-style; the thesis' Table 3.2 is missing from the source): bicubic x8 of the LR
  -> conv7x7/2 + BN + ReLU -> residual modules -> stacked hourglasses -> conv1x1 -> parsing logits at
  64x64 -> bilinear x2 -> sigmoid -> (B, num_parsing, 128, 128) maps in [0, 1].
* Fusing module: concat(coarse, parsing) -> conv3x3 + PReLU -> SRResNet residual block -> conv3x3 -> SR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facesr.models.bicubic import bicubic_upsample
from facesr.models.output import SROutput
from facesr.models.registry import ModelConfigError, register_model
from facesr.models.srresnet import ResidualBlock, SRResNetTrunk, check_bool, check_positive, check_upscale

ATTENTION_MODES = ("softmax", "sigmoid", "none")


class ChannelAttention(nn.Module):
    """Squeeze-excitation weights w (B, C, 1, 1): GAP -> FC(C, C/r) -> ReLU -> FC(C/r, C) -> gate.

    The gate is a softmax over channels (thesis eq. 3.3: the weights of one sample sum to 1), a
    sigmoid (SE-Net, for the ablation), or none (w = 1, no FC layers: the block without attention).
    """

    def __init__(self, num_feat: int, reduction: int, mode: str):
        super().__init__()
        self.mode = mode
        if mode == "none":
            self.fc = None
        else:
            hidden = max(1, num_feat // reduction)
            self.fc = nn.Sequential(nn.Linear(num_feat, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_feat))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        if self.fc is None:
            return feat.new_ones(feat.shape[0], feat.shape[1], 1, 1)
        z = self.fc(feat.mean(dim=(2, 3)))
        w = torch.softmax(z, dim=1) if self.mode == "softmax" else torch.sigmoid(z)
        return w[:, :, None, None]


class AttentionBlock(nn.Module):
    """The thesis' basic block (Fig. 3.3, eqs. 3.1-3.4).

    F3 = conv3x3(F_in); F5 = conv3x3 dilation 2 (F_in) (a 5x5 field); F' = F3 + F5;
    w = ChannelAttention(F'); F_out = conv3x3(ReLU(F' * w)); output F_in + F_out.
    `last_attention` keeps the (B, C) weights of the latest forward pass (detached) for inspection.
    """

    def __init__(self, num_feat: int, reduction: int, attention: str):
        super().__init__()
        self.conv3 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat, num_feat, 3, 1, padding=2, dilation=2)
        self.attention = ChannelAttention(num_feat, reduction, attention)
        self.conv_out = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.conv3(x) + self.conv5(x)
        w = self.attention(fused)
        self.last_attention = w.detach().flatten(1)
        return x + self.conv_out(F.relu(fused * w))


class HourglassResidual(nn.Module):
    """Newell et al.'s bottleneck residual module (pre-activation):
    BN-ReLU-conv1x1 (C/2) -> BN-ReLU-conv3x3 (C/2) -> BN-ReLU-conv1x1 (C), plus the identity."""

    def __init__(self, num_feat: int):
        super().__init__()
        mid = max(1, num_feat // 2)
        self.body = nn.Sequential(
            nn.BatchNorm2d(num_feat), nn.ReLU(inplace=True), nn.Conv2d(num_feat, mid, 1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, 1, 1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, num_feat, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Hourglass(nn.Module):
    """One hourglass of depth `depth` (Newell et al. 2016, Fig. 3): at each level a skip residual
    at the current scale, and maxpool/2 -> residual -> (inner hourglass | residual) -> residual ->
    nearest x2, summed with the skip. Depth 4 on 64x64 features reaches 4x4."""

    def __init__(self, num_feat: int, depth: int):
        super().__init__()
        self.skip = HourglassResidual(num_feat)
        self.pool = nn.MaxPool2d(2, 2)
        self.down = HourglassResidual(num_feat)
        self.inner = Hourglass(num_feat, depth - 1) if depth > 1 else HourglassResidual(num_feat)
        self.up_res = HourglassResidual(num_feat)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.up(self.up_res(self.inner(self.down(self.pool(x)))))


class StackedHourglassStage(nn.Module):
    """Hourglass -> residual -> conv1x1-BN-ReLU, added back onto its input.

    Newell's stacks merge intermediate predictions back in; the thesis has a single parsing loss
    (no intermediate supervision), so each stage is a residual refinement of the features instead.
    """

    def __init__(self, num_feat: int, depth: int):
        super().__init__()
        self.hourglass = Hourglass(num_feat, depth)
        self.res = HourglassResidual(num_feat)
        self.lin = nn.Sequential(nn.Conv2d(num_feat, num_feat, 1), nn.BatchNorm2d(num_feat), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.lin(self.res(self.hourglass(x)))


class BicubicUpsample(nn.Module):
    """Bicubic x`scale` (no clamp) as a module, so hooks and the layer table see it."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bicubic_upsample(x, self.scale)


class PriorBranch(nn.Module):
    """FSRNet-style parsing-map estimator: LR -> (B, num_parsing, upscale*h, upscale*w) in [0, 1]."""

    def __init__(self, upscale: int, num_parsing: int, prior_feat: int, prior_res_blocks: int,
                 num_hourglass: int, hourglass_depth: int):
        super().__init__()
        self.input_up = BicubicUpsample(upscale)
        self.stem = nn.Sequential(
            nn.Conv2d(3, prior_feat, 7, 2, 3), nn.BatchNorm2d(prior_feat), nn.ReLU(inplace=True)
        )
        self.res_blocks = nn.Sequential(*[HourglassResidual(prior_feat) for _ in range(prior_res_blocks)])
        self.hourglasses = nn.Sequential(
            *[StackedHourglassStage(prior_feat, hourglass_depth) for _ in range(num_hourglass)]
        )
        self.head = nn.Conv2d(prior_feat, num_parsing, 1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.gate = nn.Sigmoid()

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = self.hourglasses(self.res_blocks(self.stem(self.input_up(lr))))
        return self.gate(self.up(self.head(x)))


class FusingModule(nn.Module):
    """Thesis Table 3.3: concat -> conv3x3 (in -> C) + PReLU -> residual block -> conv3x3 (C -> 3).

    The PReLU after the first conv follows SRResNet's head (the table lists no activation; without
    one the first conv and the block's first conv would compose into a single linear map).
    """

    def __init__(self, in_ch: int, num_feat: int):
        super().__init__()
        self.conv_in = nn.Sequential(nn.Conv2d(in_ch, num_feat, 3, 1, 1), nn.PReLU())
        self.res = ResidualBlock(num_feat)
        self.conv_out = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.res(self.conv_in(x)))


@register_model("method1")
class PriorGuidedSR(nn.Module):
    """Method 1: LR (B,3,h,w) -> SROutput(sr (B,3,H,W), coarse (B,3,H,W), parsing (B,num_parsing,H,W)
    in [0,1]), with H, W = upscale*h, upscale*w. The prior branch's stride-2 stem and x2 head assume
    even H, W.

    With ``prior=False`` (ablation) there is no prior branch: the output's ``parsing`` is None,
    ``predicts_parsing`` is False, and the fusing module sees the coarse image alone (its first conv
    takes 3 channels, not 3 + num_parsing); `facesr.losses.ContentLoss` then drops the parsing term.

    Args:
        num_feat (int): Feature channels of the SR branch and the fusing module. Default: 64.
        num_block (int): Attention blocks in the SR branch. Default: 16.
        upscale (int): Upsampling factor, a power of two. Default: 8.
        reduction (int): Channel reduction r of the attention's first FC layer (C -> max(1, C // r)).
            Default: 16.
        attention (str): Channel-attention gate: "softmax" (thesis), "sigmoid" (SE-Net) or "none"
            (w = 1). Default: "softmax".
        prior (bool): Build the prior branch and feed its parsing maps to the fusing module. Default: True.
        num_parsing (int): Parsing maps predicted (SPEC.md's 11 face parts). Default: 11.
        prior_feat (int): Feature channels of the prior branch. Default: 64.
        prior_res_blocks (int): Residual modules between the stem and the hourglasses. Default: 3.
        num_hourglass (int): Stacked hourglass blocks. Default: 2.
        hourglass_depth (int): Down-sampling levels of each hourglass (64x64 -> 4x4 at 4). Default: 4.
        image_residual (bool): The SR branch adds the bicubic upsampling of the LR to its output and
            the fusing module adds the coarse SR to its own, so both learn residuals. Not in the
            thesis; for small CPU budgets (the demo profile). Default: False.
    """

    def __init__(self, num_feat: int = 64, num_block: int = 16, upscale: int = 8, reduction: int = 16,
                 attention: str = "softmax", prior: bool = True, num_parsing: int = 11, prior_feat: int = 64,
                 prior_res_blocks: int = 3, num_hourglass: int = 2, hourglass_depth: int = 4,
                 image_residual: bool = False):
        super().__init__()
        check_bool("method1", image_residual=image_residual)
        self.image_residual = image_residual
        check_positive("method1", num_feat=num_feat, num_block=num_block, reduction=reduction,
                       num_parsing=num_parsing, prior_feat=prior_feat, hourglass_depth=hourglass_depth)
        if not isinstance(prior_res_blocks, int) or prior_res_blocks < 0:
            raise ModelConfigError(f"method1: prior_res_blocks must be an integer >= 0, got {prior_res_blocks!r}")
        if not isinstance(num_hourglass, int) or num_hourglass < 0:
            raise ModelConfigError(f"method1: num_hourglass must be an integer >= 0, got {num_hourglass!r}")
        if attention not in ATTENTION_MODES:
            raise ModelConfigError(f"method1: attention must be one of {', '.join(ATTENTION_MODES)}, got {attention!r}")
        if not isinstance(prior, bool):
            raise ModelConfigError(f"method1: prior must be true or false, got {prior!r}")
        stages = check_upscale("method1", upscale)
        blocks = [AttentionBlock(num_feat, reduction, attention) for _ in range(num_block)]
        self.sr_branch = SRResNetTrunk(3, 3, num_feat, blocks, stages, image_residual)
        self.prior_branch = (
            PriorBranch(upscale, num_parsing, prior_feat, prior_res_blocks, num_hourglass, hourglass_depth)
            if prior else None
        )
        self.fusing = FusingModule(3 + num_parsing if prior else 3, num_feat)

    @property
    def predicts_parsing(self) -> bool:
        """Whether outputs carry parsing maps: the model has a prior branch (``prior=True``)."""
        return self.prior_branch is not None

    @property
    def attention_blocks(self) -> list[AttentionBlock]:
        return [m for m in self.sr_branch.body if isinstance(m, AttentionBlock)]

    def forward(self, lr: torch.Tensor) -> SROutput:
        coarse = self.sr_branch(lr)
        parsing = None if self.prior_branch is None else self.prior_branch(lr)
        sr = self.fusing(coarse if parsing is None else torch.cat([coarse, parsing], dim=1))
        if self.image_residual:
            sr = sr + coarse
        return SROutput(sr=sr, coarse=coarse, parsing=parsing)
