"""The decoding policy of `facesr upscale`: any input file or in-memory image as 8-bit RGB, or an
error naming it.

Palette, grayscale, 1-bit, alpha, CMYK and 16-bit grayscale images are converted to 8-bit RGB with
a note naming the file; float and 32-bit integer images (no defined range) are rejected. Opening is
`facesr.data.imageio.open_image`, the one safe opener of the project: non-images, empty and
truncated files and decompression bombs are refused there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from facesr.data.imageio import ImageProblem, load_pixels, open_image
from facesr.inference.errors import BadImageError, InferenceError


@dataclass
class LoadedImage:
    path: Path
    image: Image.Image  # 8-bit RGB
    notes: list[str] = field(default_factory=list)


def read_image(path: str | Path, *, max_pixels: int | None = None) -> LoadedImage:
    """An input image as 8-bit RGB with notes, or a BadImageError naming the file and the problem.

    `max_pixels` (default Pillow's `Image.MAX_IMAGE_PIXELS`) caps width x height; a file claiming
    more is refused from its header, before any pixel is decoded.
    """
    path = Path(path)
    where = str(path)
    try:
        with open_image(path, max_pixels=max_pixels) as im:
            load_pixels(im)
            frames = getattr(im, "n_frames", 1)
            im = ImageOps.exif_transpose(im) or im
            rgb, notes = to_rgb(im, where)
            rgb.load()
    except ImageProblem as exc:
        raise BadImageError(f"{where}: {exc}") from exc
    if frames > 1:
        notes.append(f"{frames} frames, the first is used")
    return LoadedImage(path, rgb, notes)


def to_rgb(im: Image.Image, where: str) -> tuple[Image.Image, list[str]]:
    """8-bit RGB from any mode with a defined meaning, and the notes a user should see."""
    mode = im.mode
    if mode == "RGB":
        return im, []
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        a = np.asarray(im).astype(np.float64)
        # 65535 / 257 = 255 exactly: the full 16-bit range maps onto the full 8-bit range.
        g = np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(g, mode="L").convert("RGB"), ["16-bit grayscale converted to 8-bit RGB"]
    if mode in ("I", "F"):
        kind = "32-bit integer" if mode == "I" else "32-bit float"
        raise BadImageError(f"{where}: {kind} image (mode {mode}) has no defined 0-255 range; "
                            "save it as 8-bit RGB")
    if mode == "CMYK":
        return im.convert("RGB"), ["CMYK converted to RGB (without colour management)"]
    if mode in ("P", "PA"):
        note = "palette image converted to RGB"
        if "transparency" in im.info or mode == "PA":
            im = im.convert("RGBA")
            return flatten_alpha(im), [note + ", transparent pixels put on white"]
        return im.convert("RGB"), [note]
    if mode in ("RGBA", "LA", "RGBa", "La"):
        return flatten_alpha(im.convert("RGBA")), ["alpha channel dropped (transparent pixels put on white)"]
    if mode in ("L", "1"):
        return im.convert("RGB"), ["grayscale image converted to RGB"]
    try:
        return im.convert("RGB"), [f"mode {mode} converted to RGB"]
    except (ValueError, OSError) as exc:
        raise BadImageError(f"{where}: image mode {mode} cannot be converted to RGB ({exc})") from exc


def flatten_alpha(rgba: Image.Image) -> Image.Image:
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def ndarray_to_pil(a: np.ndarray, i: int) -> Image.Image:
    """A uint8 array (H,W), (H,W,3) or (H,W,4) as an RGB image; `i` names it in errors."""
    if a.dtype != np.uint8:
        raise InferenceError(f"image {i}: expected a uint8 array (H,W,3) or (H,W), got {a.dtype}")
    if a.ndim == 2:
        return Image.fromarray(a, mode="L").convert("RGB")
    if a.ndim == 3 and a.shape[2] == 3:
        return Image.fromarray(a, mode="RGB")
    if a.ndim == 3 and a.shape[2] == 4:
        return flatten_alpha(Image.fromarray(a, mode="RGBA"))
    raise InferenceError(f"image {i}: expected an array (H,W,3) or (H,W), got shape {a.shape}")
