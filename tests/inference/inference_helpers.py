"""Helpers of the inference tests (and of tests/test_faces_real.py): a tiny Method 1 trained for a few
steps, face crops as files, and an image check."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facesr.models import build_model, save_generator

TINY_METHOD1 = dict(num_feat=8, num_block=1, reduction=4, prior_feat=8, prior_res_blocks=1, num_hourglass=1,
                    hourglass_depth=2)


def as_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255


def train_tiny_method1(lr: torch.Tensor, hr: torch.Tensor, path: Path) -> Path:
    """A tiny Method 1 trained for 6 steps on 12 LR/HR pairs, saved as a generator file at `path`: a
    model whose output is its own (not a resize of its input), in seconds."""
    torch.manual_seed(0)
    model = build_model("method1", **TINY_METHOD1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for step in range(6):
        idx = torch.arange(4) + (step % 3) * 4
        out = model(lr[idx])
        loss = torch.nn.functional.mse_loss(out.coarse, hr[idx]) + torch.nn.functional.mse_loss(out.sr, hr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    save_generator(path, model, metrics={"steps": 6})
    return path


def write_crops(faces: np.ndarray, dst: Path, size: int = 48) -> list[Path]:
    """Each uint8 (H, W, 3) face as `dst/face<i>.jpg` at `size` x `size`, like a real blurry crop."""
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for i, face in enumerate(faces):
        p = dst / f"face{i}.jpg"
        Image.fromarray(np.asarray(face)).resize((size, size), Image.BICUBIC).save(p, quality=95)
        out.append(p)
    return out


def assert_image(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as im:
        im.load()
        assert im.size == size and im.mode == "RGB", (path, im.size, im.mode)


def png_with_size(path: Path, width: int, height: int) -> Path:
    """A valid PNG header claiming width x height, with a tiny (truncated) body: a decompression bomb
    must be refused from the header alone."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path
