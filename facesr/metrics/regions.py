"""PSNR inside face regions, and mean IoU of predicted parsing maps.

Regions are built from the HR parsing maps (channels named by ``parts``, SPEC.md's 11-channel order by
default), each channel thresholded at 0.5:

    eyes  = l_eye | r_eye        brows = l_brow | r_brow        nose = nose
    mouth = mouth | u_lip | l_lip                                skin = skin minus the four regions above

Skin excludes the other regions because CelebAMask-HQ's skin annotation lies under eyes, brows, nose
and mouth; without the exclusion "skin" would mostly measure the whole face. A region PSNR is the RGB
uint8 PSNR (range 255) over the region's pixels only (all 3 channels); it is NaN where the region is
empty in that face (e.g. eyes hidden by sunglasses), so means over faces must skip NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facesr.data.layout import PARTS as SPEC_PARTS
from facesr.metrics.quality import DATA_RANGE, MetricsError, check_pair, quantize

# the default channel names of `parsing`: the prepared data's (one list, in the data layout)
PARTS = list(SPEC_PARTS)
REGIONS: dict[str, tuple[str, ...]] = {
    "eyes": ("l_eye", "r_eye"),
    "brows": ("l_brow", "r_brow"),
    "nose": ("nose",),
    "mouth": ("mouth", "u_lip", "l_lip"),
    "skin": ("skin",),
}
THRESHOLD = 0.5

# torch loads inside the functions, so that importing facesr.metrics (which the report and `facesr --help`
# do) stays torch-free.
if TYPE_CHECKING:
    import torch


def _check_maps(maps: torch.Tensor, name: str, parts: list[str] | None, like: torch.Tensor | None = None) -> None:
    import torch

    if not isinstance(maps, torch.Tensor) or maps.ndim != 4:
        raise MetricsError(f"{name} must be a (B, C, H, W) tensor, got {getattr(maps, 'shape', type(maps))}")
    if parts is not None and maps.shape[1] != len(parts):
        raise MetricsError(f"{name} has {maps.shape[1]} channels but parts lists {len(parts)}: {parts}")
    if like is not None and (maps.shape[0] != like.shape[0] or maps.shape[-2:] != like.shape[-2:]):
        raise MetricsError(f"{name} {tuple(maps.shape)} does not match images {tuple(like.shape)} in batch/size")


def region_masks(parsing: torch.Tensor, parts: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Boolean (B, H, W) mask per region; regions whose channels are all absent from ``parts`` are left out."""
    parts = list(parts) if parts is not None else PARTS
    _check_maps(parsing, "parsing", parts)
    on = parsing > THRESHOLD
    masks: dict[str, torch.Tensor] = {}
    for region, channels in REGIONS.items():
        idx = [parts.index(c) for c in channels if c in parts]
        if idx:
            masks[region] = on[:, idx].any(dim=1)
    if "skin" in masks:
        for region, m in masks.items():
            if region != "skin":
                masks["skin"] = masks["skin"] & ~m
    return masks


def region_psnr(sr: torch.Tensor, hr: torch.Tensor, parsing: torch.Tensor,
                parts: list[str] | None = None) -> dict[str, torch.Tensor]:
    """``{region: (B,)}`` PSNR over each region's pixels; NaN where a face has no pixel of the region."""
    import torch

    check_pair(sr, hr, "region_psnr")
    _check_maps(parsing, "parsing", parts, like=sr)
    sq = (quantize(sr) - quantize(hr)).pow(2).sum(dim=1)  # (B, H, W), summed over RGB
    out = {}
    for region, mask in region_masks(parsing.to(sr.device), parts).items():
        n = mask.flatten(1).sum(dim=1).to(torch.float64) * 3
        mse = (sq * mask).flatten(1).sum(dim=1) / n  # 0/0 -> NaN for empty regions, by design
        out[region] = 10.0 * torch.log10(DATA_RANGE**2 / mse)
    return out


def parsing_iou(pred: torch.Tensor, gt: torch.Tensor, threshold: float = THRESHOLD) -> torch.Tensor:
    """Mean IoU per image (B,) over the channels set in either map (both thresholded); NaN if none is."""
    import torch

    _check_maps(pred, "pred parsing", None)
    _check_maps(gt, "gt parsing", None)
    if pred.shape != gt.shape:
        raise MetricsError(f"parsing_iou: pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in shape")
    p = pred > threshold
    g = gt.to(pred.device) > threshold
    inter = (p & g).flatten(2).sum(dim=2).to(torch.float64)
    union = (p | g).flatten(2).sum(dim=2).to(torch.float64)
    present = union > 0
    iou = torch.where(present, inter / union.clamp(min=1), torch.zeros_like(inter))
    return iou.sum(dim=1) / present.sum(dim=1).to(torch.float64)  # 0/0 -> NaN when nothing is present
