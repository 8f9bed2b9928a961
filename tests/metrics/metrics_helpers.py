"""Helpers for tests/metrics (a uniquely named module: several test folders have a conftest). Real faces at 128x128 (PIL BICUBIC from the mini set) and their bicubic x8 (down to 16, up again)."""

from __future__ import annotations

import numpy as np


def bicubic_pairs(mini_dir, n: int):
    from PIL import Image

    hr, sr = [], []
    for i in range(n):
        with Image.open(mini_dir / "CelebA-HQ-img" / f"{i}.jpg") as im:
            h = im.convert("RGB").resize((128, 128), Image.BICUBIC)
        s = h.resize((16, 16), Image.BICUBIC).resize((128, 128), Image.BICUBIC)
        hr.append(np.asarray(h))
        sr.append(np.asarray(s))
    return np.stack(sr), np.stack(hr)


def to_tensor(arr):
    import torch

    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).to(torch.float32) / 255.0


