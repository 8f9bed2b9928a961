"""Faces in whole photos: detect (MTCNN), align to the training crop, paste the SR face back.

The model was trained on CelebA-HQ-aligned faces at 128x128, so a face found in a photo is warped by
a similarity transform that puts its five MTCNN landmarks (eyes, nose, mouth corners) where they sit
on a CelebA-HQ face at 128x128 (`CANONICAL_LANDMARKS_128`, measured, see docs/upscale.md). The SR
face is warped back with the inverse transform and blended with a feathered mask that is exactly 0
on the crop's border, so every photo pixel outside the masks keeps its original bytes.

Warps go through Pillow (bicubic, like training's downscaling). An affine warp samples one point
per output pixel and would alias when it shrinks, so a shrinking warp first resizes its source
region with Pillow's antialiased bicubic and only then warps at about 1:1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

# Mean MTCNN landmarks of 64 mini-set faces (ids 0-63) resized 512 -> 128 with bicubic; all 64 were
# detected and the std of every coordinate is under 4.3 px. Order: the image's left eye, right eye,
# nose, left mouth corner, right mouth corner, as (x, y) in pixels. Re-measure with
# `python -m facesr.faces --measure-canonical DIR` (docs/upscale.md).
CANONICAL_LANDMARKS_128 = np.array(
    [[48.97, 61.12], [80.23, 61.36], [64.11, 80.83], [50.56, 94.22], [78.19, 94.34]], dtype=np.float64
)

INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0"


class DetectorUnavailableError(RuntimeError):
    """The face detector (facenet-pytorch's MTCNN) cannot be imported."""


class NoFaceError(ValueError):
    """A photo in which the detector found no face above the score threshold."""


@dataclass(frozen=True)
class Face:
    """One detected face in photo pixel coordinates."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, mouth left, mouth right (image sides)

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
        }


_DETECTORS: dict[tuple[str, int], object] = {}


def _mtcnn(device: str, min_face_size: int):
    key = (str(device), int(min_face_size))
    if key not in _DETECTORS:
        try:
            from facenet_pytorch import MTCNN
        except ImportError as exc:
            raise DetectorUnavailableError(
                f"--faces auto needs facenet-pytorch's MTCNN face detector, which is not importable ({exc}); "
                f"install it with: {INSTALL_HINT}"
            ) from exc
        # The pnet/rnet/onet weights ship inside the wheel, so this works offline.
        _DETECTORS[key] = MTCNN(keep_all=True, min_face_size=min_face_size, device=device)
    return _DETECTORS[key]


def detect_faces(image: Image.Image | np.ndarray, *, min_score: float = 0.9, min_face_size: int = 16,
                 device: str = "cpu") -> list[Face]:
    """Faces in an RGB photo, left to right; those scoring under `min_score` are dropped."""
    import torch

    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    if pil.mode != "RGB":
        pil = pil.convert("RGB")
    detector = _mtcnn(device, min_face_size)
    with torch.no_grad():
        boxes, probs, points = detector.detect(pil, landmarks=True)
    if boxes is None:
        return []
    faces = []
    # facenet-pytorch 2.6 returns object arrays under numpy 2: cast each row explicitly.
    for box, prob, pts in zip(boxes, probs, points):
        if prob is None or float(prob) < min_score:
            continue
        faces.append(Face(tuple(float(v) for v in np.asarray(box, dtype=np.float64)), float(prob),
                          np.asarray(pts, dtype=np.float64).reshape(5, 2)))
    return sorted(faces, key=lambda f: f.box[0])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 rotation + uniform scale + translation that maps `src` points onto `dst` in the
    least-squares sense (no reflection, no shear, so a face is never distorted)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"similarity_transform needs two (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    # x' = a x - b y + tx ; y' = b x + a y + ty, linear in (a, b, tx, ty).
    n = len(src)
    rows = np.zeros((2 * n, 4))
    rows[0::2] = np.column_stack([src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)])
    rows[1::2] = np.column_stack([src[:, 1], src[:, 0], np.zeros(n), np.ones(n)])
    (a, b, tx, ty), *_ = np.linalg.lstsq(rows, dst.reshape(-1), rcond=None)
    if a * a + b * b < 1e-12:
        raise ValueError("similarity_transform: degenerate landmarks (all at one point)")
    return np.array([[a, -b, tx], [b, a, ty], [0.0, 0.0, 1.0]])


def canonical_landmarks(size: int = 128) -> np.ndarray:
    return CANONICAL_LANDMARKS_128 * (size / 128.0)


def warp_affine(src: Image.Image, out_to_in: np.ndarray, out_size: tuple[int, int], fill=0) -> Image.Image:
    """`src` sampled at `out_to_in @ (x, y, 1)` for every output pixel (bicubic, `fill` outside).

    When the map shrinks (more than one source pixel per output pixel), the source region is first
    reduced with Pillow's antialiased bicubic so the warp itself runs at about 1:1.
    """
    out_w, out_h = out_size
    A = np.asarray(out_to_in, dtype=np.float64)
    in_per_out = math.sqrt(abs(np.linalg.det(A[:2, :2])))
    if in_per_out > 1.05:
        corners = np.array([[0, 0, 1], [out_w, 0, 1], [0, out_h, 1], [out_w, out_h, 1]], dtype=np.float64)
        mapped = corners @ A.T
        pad = 4 * in_per_out
        x0 = math.floor(mapped[:, 0].min() - pad)
        y0 = math.floor(mapped[:, 1].min() - pad)
        x1 = math.ceil(mapped[:, 0].max() + pad)
        y1 = math.ceil(mapped[:, 1].max() + pad)
        # Pillow pads a crop box past the border with zeros, which is the same as the warp's fill.
        region = src.crop((x0, y0, x1, y1))
        new_w = max(1, round((x1 - x0) / in_per_out))
        new_h = max(1, round((y1 - y0) / in_per_out))
        region = region.resize((new_w, new_h), Image.BICUBIC)
        to_region = np.array([[new_w / (x1 - x0), 0, -x0 * new_w / (x1 - x0)],
                              [0, new_h / (y1 - y0), -y0 * new_h / (y1 - y0)], [0, 0, 1]])
        src, A = region, to_region @ A
    coeffs = tuple(float(v) for v in A[:2].reshape(-1))
    return src.transform((out_w, out_h), Image.AFFINE, coeffs, resample=Image.BICUBIC, fillcolor=fill)


@dataclass(frozen=True)
class AlignedFace:
    crop: Image.Image  # RGB, size x size
    to_crop: np.ndarray  # 3x3, photo pixel -> crop pixel
    face: Face


def align_face(photo: Image.Image, face: Face, size: int = 128) -> AlignedFace:
    """The face warped to the CelebA-HQ-aligned framing at `size` x `size`."""
    to_crop = similarity_transform(face.landmarks, canonical_landmarks(size))
    crop = warp_affine(photo, np.linalg.inv(to_crop), (size, size))
    return AlignedFace(crop, to_crop, face)


def feather_mask(size: int, *, border: int | None = None, ramp: int | None = None) -> np.ndarray:
    """(size, size) float32 mask: 0 on a `border`-pixel frame, a smoothstep over `ramp` pixels, 1 inside.

    The zero frame makes the warped mask's support end inside the warped crop, so bicubic ringing at
    the crop's edge never reaches the photo.
    """
    border = max(2, size // 32) if border is None else border
    ramp = max(4, size // 8) if ramp is None else ramp
    idx = np.arange(size, dtype=np.float64)
    edge = np.minimum(idx, size - 1 - idx)
    dist = np.minimum.outer(edge, edge)
    t = np.clip((dist - border) / ramp, 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def paste_face(canvas: np.ndarray, sr: Image.Image | np.ndarray, to_crop: np.ndarray,
               mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Blend the SR crop back into `canvas` (uint8 H, W, 3) through the inverse of `to_crop`.

    `to_crop` maps canvas pixels to crop pixels (for a canvas scaled by k from the photo, compose it
    with diag(1/k)). Returns (new canvas, mask (H, W) float32 in [0, 1]); pixels where the mask is 0
    are the canvas's own bytes.
    """
    sr_img = sr if isinstance(sr, Image.Image) else Image.fromarray(np.asarray(sr, dtype=np.uint8))
    size = sr_img.size[0]
    if sr_img.size != (size, size):
        raise ValueError(f"paste_face: the SR face must be square, got {sr_img.size}")
    mask = feather_mask(size) if mask is None else mask
    h, w = canvas.shape[:2]
    from_crop = np.linalg.inv(to_crop)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64) @ from_crop.T
    x0 = max(0, math.floor(corners[:, 0].min()) - 1)
    y0 = max(0, math.floor(corners[:, 1].min()) - 1)
    x1 = min(w, math.ceil(corners[:, 0].max()) + 1)
    y1 = min(h, math.ceil(corners[:, 1].max()) + 1)
    full_mask = np.zeros((h, w), dtype=np.float32)
    out = canvas.copy()
    if x1 <= x0 or y1 <= y0:
        return out, full_mask
    region_to_crop = to_crop @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], dtype=np.float64)
    rw, rh = x1 - x0, y1 - y0
    face_px = np.asarray(warp_affine(sr_img.convert("RGB"), region_to_crop, (rw, rh)), dtype=np.float32)
    m = np.asarray(warp_affine(Image.fromarray(mask, mode="F"), region_to_crop, (rw, rh), fill=0.0),
                   dtype=np.float32)
    # Bicubic overshoots a little around the ramp; values this small would change no byte anyway.
    m = np.clip(m, 0.0, 1.0)
    m[m < 1e-3] = 0.0
    region = out[y0:y1, x0:x1].astype(np.float32)
    blended = np.clip(np.rint(region * (1 - m[..., None]) + face_px * m[..., None]), 0, 255).astype(np.uint8)
    inside = m > 0
    out[y0:y1, x0:x1][inside] = blended[inside]
    full_mask[y0:y1, x0:x1] = m
    return out, full_mask


def measure_canonical(image_paths: list, size: int = 128) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and std of MTCNN's landmarks on aligned faces resized to `size`, and the number found."""
    points = []
    for path in image_paths:
        with Image.open(path) as im:
            img = im.convert("RGB").resize((size, size), Image.BICUBIC)
        faces = detect_faces(img, min_score=0.0, min_face_size=max(12, size // 8))
        if faces:
            points.append(max(faces, key=lambda f: f.score).landmarks)
    if not points:
        raise NoFaceError("measure_canonical: no face found in any image")
    arr = np.stack(points)
    return arr.mean(0), arr.std(0), len(points)


def main(argv: list[str] | None = None) -> int:
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description="Measure the canonical landmark positions of aligned faces.")
    parser.add_argument("--measure-canonical", metavar="DIR", required=True,
                        help="folder of aligned faces (e.g. the mini set's CelebA-HQ-img)")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args(argv)
    folder = Path(args.measure_canonical)
    paths = sorted(folder.glob("*.jpg"), key=lambda p: (len(p.stem), p.stem))[: args.count]
    mean, std, n = measure_canonical(paths, args.size)
    print(f"{n} of {len(paths)} faces detected at {args.size}x{args.size}")
    print("mean:", np.round(mean, 2).tolist())
    print("std: ", np.round(std, 2).tolist())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
