"""Whole photos (`--faces auto`): detect, align, super-resolve and paste back every face
(facesr.faces does the geometry; docs/upscale.md "Whole photos")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from facesr.data.imageio import pixel_limit
from facesr.inference.errors import OutputTooLargeError
from facesr.inference.images import ndarray_to_pil
from facesr.inference.lowres import to_lr
from facesr.inference.render import tensor_to_pil


class FaceUpscaler(Protocol):
    """What the photo pipeline needs of a model (an `facesr.inference.upscaler.Upscaler` is one):
    photos does not import the Upscaler, so that the two modules do not import each other."""

    device: str
    hr_size: int

    def predict(self, lr): ...

    def lr_tensor(self, images: list[Image.Image]): ...


@dataclass
class PhotoResult:
    """A photo with its faces super-resolved: image (uint8 H,W,3, the photo scaled by `photo_scale`),
    the faces found, per-face LR/SR crops and parsing maps, and the union of the paste masks (H,W)."""

    image: np.ndarray
    faces: list
    lrs: list
    srs: list
    parsings: list
    mask: np.ndarray


def default_detector_device(up: FaceUpscaler) -> str:
    """MTCNN runs where the model runs: on the GPU when the model is on one."""
    return "cuda" if str(up.device).startswith("cuda") else "cpu"


def upscale_photo(photo: Image.Image | np.ndarray, up: FaceUpscaler, *, batch: int = 16, photo_scale: int = 1,
                  min_score: float = 0.9, detector_device: str | None = None,
                  max_pixels: int | None = None) -> PhotoResult:
    """Detect, align, super-resolve and paste back every face of a photo (PIL.Image, or uint8 ndarray).

    Outside the returned mask the image holds the photo's own bytes (or its bicubic enlargement when
    `photo_scale` > 1). Raises NoFaceError when the detector finds no face, and OutputTooLargeError,
    before any work, when the enlarged photo would have more than `max_pixels` pixels (default
    Pillow's `Image.MAX_IMAGE_PIXELS`, the limit `read_image` puts on inputs).
    """
    from facesr.faces import NoFaceError, align_face, detect_faces, paste_face

    if not isinstance(photo, Image.Image):
        photo = ndarray_to_pil(np.asarray(photo), 0)
    w, h = photo.size
    limit = pixel_limit(max_pixels)
    if limit is not None and (w * photo_scale) * (h * photo_scale) > limit:
        # the largest k with (k*w) * (k*h) <= limit
        fits = math.isqrt(limit // (w * h))
        hint = f"use a --photo-scale of at most {fits}" if fits else "the photo itself is over it"
        raise OutputTooLargeError(
            f"photo scale {photo_scale} would make a {w * photo_scale}x{h * photo_scale} image "
            f"({w * photo_scale * h * photo_scale} pixels), over the limit of {limit} pixels that inputs get too "
            f"(Pillow's Image.MAX_IMAGE_PIXELS); {hint}"
        )
    photo = photo.convert("RGB")
    found = detect_faces(photo, min_score=min_score, device=detector_device or default_detector_device(up))
    if not found:
        raise NoFaceError(f"no face found (MTCNN, score >= {min_score}); for an aligned face crop use --faces crop")
    aligned = [align_face(photo, f, up.hr_size) for f in found]
    lrs = [to_lr(a.crop, up.hr_size) for a in aligned]
    srs, parsings = [], []
    for start in range(0, len(lrs), batch):
        pred = up.predict(up.lr_tensor(lrs[start:start + batch]))
        srs += [tensor_to_pil(s) for s in pred.sr]
        parsings += list(pred.parsing) if pred.parsing is not None else [None] * len(pred.sr)
    canvas = np.asarray(photo)
    scale_m = np.eye(3)
    if photo_scale != 1:
        w, h = photo.size
        canvas = np.asarray(photo.resize((w * photo_scale, h * photo_scale), Image.BICUBIC))
        scale_m = np.diag([1.0 / photo_scale, 1.0 / photo_scale, 1.0])
    union = np.zeros(canvas.shape[:2], dtype=np.float32)
    for a, sr in zip(aligned, srs):
        canvas, m = paste_face(canvas, sr, a.to_crop @ scale_m)
        union = np.maximum(union, m)
    return PhotoResult(canvas, found, lrs, srs, parsings, union)
