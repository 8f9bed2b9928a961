"""The LR face a generator takes, made from a face crop the way training made its LR (SPEC
"Downscaling"): the crop is resized to the model's HR size, then to `LR_SIZE`, both with Pillow's
antialiased bicubic; a crop already at `LR_SIZE` is used as is.

Its own module because the `Upscaler` (crops) and the photo pipeline (faces found in photos) both
make LR faces, and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from facesr.data.layout import LR_SIZE

if TYPE_CHECKING:
    import torch


def to_lr(image: Image.Image, hr_size: int) -> Image.Image:
    """The LR (`LR_SIZE` square) of a face crop, made as training made it (resize to HR, then to LR, bicubic AA)."""
    if image.size == (LR_SIZE, LR_SIZE):
        return image
    if image.size != (hr_size, hr_size):
        image = image.resize((hr_size, hr_size), Image.BICUBIC)
    return image.resize((LR_SIZE, LR_SIZE), Image.BICUBIC)


def lr_tensor(images: Sequence[Image.Image], hr_size: int) -> torch.Tensor:
    """The LR batch (B,3,LR_SIZE,LR_SIZE) float [0,1] of face crops (`to_lr` of each, as RGB)."""
    import torch

    arr = np.stack([np.asarray(to_lr(im.convert("RGB"), hr_size)) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(255.0)
