"""Losses: Method 1's content loss, the VGG perceptual loss and the GAN losses (thesis 3.1.2, 3.2.2).

Choices the thesis leaves open, fixed here:

* Every MSE is a mean over all elements (eqs. 3.5-3.7 and 3.11 are per-pixel means; channels and the
  batch are averaged too), so the loss scale does not depend on the batch size or image size.
* The perceptual loss compares VGG19 features after the ReLU of conv5_4, before the 5th max-pool:
  SRGAN's phi_{5,4} ("the feature map obtained by the j-th convolution (after activation) before the
  i-th maxpooling layer", Ledig et al. 2017, Sec. 2.2.2; thesis eq. 3.11 uses the same wording). The
  features are not rescaled: SRGAN's 1/12.75 rescaling equals a weight of 1/12.75^2 = 6.2e-3, which is
  SPEC.md's beta = 6e-3.
* The adversarial losses are means over the batch (eq. 3.12 sums over N; the mean keeps gamma
  independent of the batch size) and use BCE-with-logits on the discriminator's logits, which is the
  thesis' sigmoid + log written stably. The generator's loss is the non-saturating -log D(G(x)).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from facesr.models.output import SROutput

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# SRGAN's phi_{5,4} for VGG19 and its analogue (last conv of block 5) for VGG16
DEFAULT_LAYER = {"vgg19": "relu5_4", "vgg16": "relu5_3"}


class LossConfigError(ValueError):
    """Bad loss arguments (weights, network, layer) or inputs that do not fit the model output."""


class ContentLoss(nn.Module):
    """Method 1's content loss ``w_coarse*MSE(coarse, HR) + w_parsing*MSE(parsing, P) + w_fine*MSE(sr, HR)``.

    Called as ``loss(output, hr, parsing) -> (total, terms)`` with a generator's `SROutput`. `terms`
    holds the unweighted MSE of each term the output has, in this order:

    * method1: ``{"coarse", "parsing", "fine"}``;
    * method1 with ``prior=False`` (``output.parsing`` is None): ``{"coarse", "fine"}``;
    * bicubic, srresnet (``output.coarse`` is None too): ``{"fine"}``, total ``w_fine * MSE(sr, HR)``.

    Args:
        w_coarse (float): Weight of the coarse SR term (thesis: 1). Default: 1.0.
        w_parsing (float): Weight of the parsing-map (prior) term (thesis: 1). Default: 1.0.
        w_fine (float): Weight of the final SR term (thesis: 1). Default: 1.0.
    """

    def __init__(self, w_coarse: float = 1.0, w_parsing: float = 1.0, w_fine: float = 1.0):
        super().__init__()
        for key, value in (("w_coarse", w_coarse), ("w_parsing", w_parsing), ("w_fine", w_fine)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise LossConfigError(f"ContentLoss: {key} must be a number >= 0, got {value!r}")
        self.w_coarse = float(w_coarse)
        self.w_parsing = float(w_parsing)
        self.w_fine = float(w_fine)

    def forward(self, output: SROutput, hr: torch.Tensor, parsing: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not isinstance(output, SROutput):
            raise LossConfigError(f"ContentLoss: expected a generator's SROutput, got {type(output).__name__}")
        terms: dict[str, torch.Tensor] = {}
        weighted: list[torch.Tensor] = []
        if output.coarse is not None:
            terms["coarse"] = F.mse_loss(output.coarse, hr)
            weighted.append(self.w_coarse * terms["coarse"])
        if output.parsing is not None:
            if parsing is None:
                raise LossConfigError("ContentLoss: the model predicts parsing maps but no target parsing was given")
            if parsing.shape != output.parsing.shape:
                raise LossConfigError(
                    f"ContentLoss: parsing target {tuple(parsing.shape)} does not match the prediction "
                    f"{tuple(output.parsing.shape)}"
                )
            terms["parsing"] = F.mse_loss(output.parsing, parsing)
            weighted.append(self.w_parsing * terms["parsing"])
        terms["fine"] = F.mse_loss(output.sr, hr)
        weighted.append(self.w_fine * terms["fine"])
        # summed left to right from the first term, not from 0: the same ops as the terms alone
        total = weighted[0]
        for term in weighted[1:]:
            total = total + term
        return total, terms


def vgg_layer_index(features: Sequence[nn.Module] | nn.Sequential, layer: str) -> int:
    """Index in a torchvision VGG ``features`` of `layer`: ``convB_K`` (the K-th conv of block B, before
    its ReLU) or ``reluB_K`` (after it). Blocks are counted by the max-pools, as in the VGG paper."""
    match = re.fullmatch(r"(conv|relu)(\d)_(\d)", layer)
    if not match:
        raise LossConfigError(f"PerceptualLoss: layer must look like relu5_4 or conv5_4, got {layer!r}")
    kind, block, conv = match.group(1), int(match.group(2)), int(match.group(3))
    names: dict[str, int] = {}
    b, k = 1, 0
    for i, module in enumerate(features):
        if isinstance(module, nn.Conv2d):
            k += 1
            names[f"conv{b}_{k}"] = i
        elif isinstance(module, nn.ReLU) and k:
            names[f"relu{b}_{k}"] = i
        elif isinstance(module, nn.MaxPool2d):
            b, k = b + 1, 0
    if f"{kind}{block}_{conv}" not in names:
        raise LossConfigError(f"PerceptualLoss: layer {layer!r} not in this VGG; it has {', '.join(names)}")
    return names[f"{kind}{block}_{conv}"]


class PerceptualLoss(nn.Module):
    """MSE between frozen ImageNet-VGG features of SR and HR images in [0, 1] (thesis eq. 3.11).

    Inputs are normalised with the ImageNet mean/std the trunk was trained with. The trunk is frozen
    and stays in eval mode; gradients flow to the SR input only.

    Args:
        net (str): "vgg19" (thesis, SRGAN) or "vgg16". Default: "vgg19".
        layer (str | None): Feature layer, ``reluB_K`` (after the activation) or ``convB_K`` (before).
            None picks relu5_4 for vgg19 (SRGAN's phi_5,4) and relu5_3 for vgg16. Default: None.
        features (nn.Module | None): A VGG ``features`` trunk to use instead of
            ``facesr.weights.vgg_features(net)`` (which loads the real ImageNet weights). Default: None.
    """

    def __init__(self, net: str = "vgg19", layer: str | None = None, *, features: nn.Module | None = None):
        super().__init__()
        if net not in DEFAULT_LAYER:
            raise LossConfigError(f"PerceptualLoss: net must be one of {', '.join(DEFAULT_LAYER)}, got {net!r}")
        if features is None:
            from facesr.weights import vgg_features

            features = vgg_features(net)
        self.net = net
        self.layer = layer or DEFAULT_LAYER[net]
        end = vgg_layer_index(features, self.layer)
        self.features = nn.Sequential(*list(features.children())[: end + 1])
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.features.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        # the trunk is a fixed feature extractor: a trainer's model.train() must not change it
        super().train(mode)
        self.features.eval()
        return self

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if sr.shape != hr.shape or sr.dim() != 4 or sr.shape[1] != 3:
            raise LossConfigError(
                f"PerceptualLoss: expected two (B, 3, H, W) images of one shape, got {tuple(sr.shape)} and "
                f"{tuple(hr.shape)}"
            )
        with torch.no_grad():
            target = self._features(hr)
        return F.mse_loss(self._features(sr), target)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``-log D(HR) - log(1 - D(G(LR)))`` averaged over the batch (thesis eq. 3.9, D's side)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating ``-log D(G(LR))`` averaged over the batch (thesis eq. 3.12)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
