"""Small prepared datasets (the packed format of docs/DEVELOPING.md) built from a few real faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import PARTS
from PIL import Image


def pack_faces(src: Path, out: Path, splits: dict[str, list[int]]) -> Path:
    """HR = bicubic-AA 128, LR = HR -> 16 bicubic-AA, parsing = 512 masks area-averaged to 128."""
    for split, ids in splits.items():
        hr, lr, parsing = [], [], []
        for i in ids:
            img = Image.open(src / "CelebA-HQ-img" / f"{i}.jpg").convert("RGB")
            h = img.resize((128, 128), Image.BICUBIC)
            hr.append(np.asarray(h))
            lr.append(np.asarray(h.resize((16, 16), Image.BICUBIC)))
            maps = np.zeros((len(PARTS), 128, 128), np.float32)
            for c, part in enumerate(PARTS):
                f = src / "CelebAMask-HQ-mask-anno" / str(i // 2000) / f"{i:05d}_{part}.png"
                if f.is_file():
                    m = np.asarray(Image.open(f).convert("L").resize((512, 512), Image.NEAREST)) > 127
                    maps[c] = m.reshape(128, 4, 128, 4).mean(axis=(1, 3))
            parsing.append(np.round(maps * 255).astype(np.uint8))
        d = out / split
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / "ids.npy", np.asarray(ids, np.int64))
        np.save(d / "hr.npy", np.stack(hr))
        np.save(d / "lr.npy", np.stack(lr))
        np.save(d / "parsing.npy", np.stack(parsing))
    (out / "manifest.json").write_text(json.dumps({
        "format": "facesr-prepared/1", "kernel": "bicubic_aa", "hr_size": 128, "scale": 8, "parts": PARTS,
        "splits": {k: len(v) for k, v in splits.items()}, "sha256": {}}))
    return out


@pytest.fixture(scope="session")
def prepared_small(mini_dir, tmp_path_factory) -> Path:
    """8 train / 4 val / 4 test real faces."""
    ids = sorted(int(p.stem) for p in (mini_dir / "CelebA-HQ-img").glob("*.jpg"))[:16]
    return pack_faces(mini_dir, tmp_path_factory.mktemp("prepared"),
                      {"train": ids[:8], "val": ids[8:12], "test": ids[12:16]})
