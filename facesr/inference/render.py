"""Rendering results: SR tensors as images, parsing overlays, LR | Bicubic | SR strips, PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from facesr.fileio import atomic_open

# One colour per parsing channel, in SPEC.md's order: skin, l_brow, r_brow, l_eye, r_eye, nose,
# mouth, u_lip, l_lip, l_ear, r_ear. Left/right pairs share a hue so the overlay reads at a glance.
PARSING_COLOURS = np.array(
    [[255, 204, 153], [153, 51, 0], [204, 102, 0], [0, 102, 255], [0, 204, 255], [0, 204, 0],
     [255, 0, 102], [204, 0, 0], [255, 80, 80], [153, 0, 204], [204, 102, 255]], dtype=np.float32
) / 255.0


def tensor_to_pil(t) -> Image.Image:
    """A (3,H,W) float tensor in [0,1] as an 8-bit RGB image (rounded, as metrics quantise)."""
    a = t.detach().clamp(0, 1).mul(255).round().to("cpu").byte().permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(a), mode="RGB")


def parsing_overlay(sr: Image.Image, parsing) -> Image.Image:
    """The parsing maps (P,H,W) in [0,1] laid over the SR face, skin first, parts on top."""
    base = np.asarray(sr.convert("RGB"), dtype=np.float32) / 255.0
    maps = parsing.detach().float().clamp(0, 1).cpu().numpy()
    if maps.shape[-2:] != base.shape[:2]:
        import torch
        import torch.nn.functional as F

        maps = F.interpolate(torch.from_numpy(maps)[None], size=base.shape[:2], mode="bilinear",
                             align_corners=False)[0].numpy()
    out = base.copy()
    for c in range(min(len(maps), len(PARSING_COLOURS))):
        alpha = 0.55 * maps[c][..., None]
        out = out * (1 - alpha) + PARSING_COLOURS[c] * alpha
    return Image.fromarray(np.clip(np.rint(out * 255), 0, 255).astype(np.uint8), mode="RGB")


def compare_strip(lr: Image.Image, bicubic: Image.Image, sr: Image.Image, panel: int) -> Image.Image:
    """LR (nearest, to show its pixels) | Bicubic | SR, each `panel` x `panel`."""
    strip = Image.new("RGB", (3 * panel + 2 * 4, panel), (255, 255, 255))
    for k, im in enumerate([lr.resize((panel, panel), Image.NEAREST),
                            bicubic.resize((panel, panel), Image.BICUBIC) if bicubic.size[0] != panel else bicubic,
                            sr.resize((panel, panel), Image.BICUBIC) if sr.size[0] != panel else sr]):
        strip.paste(im, (k * (panel + 4), 0))
    return strip


def save_atomic(image: Image.Image, path: Path) -> Path:
    """`image` as a PNG at `path`, written atomically (facesr.fileio)."""
    with atomic_open(path, "wb") as fh:
        image.save(fh, format="PNG")
    return path
