"""Safe image opening, for the data stages and for `facesr upscale`: every way a file can be
unusable becomes an `ImageProblem` with a reason.

The reasons name the problem in words a user can act on (empty, truncated, grayscale, 16-bit, wrong
size, decompression bomb), and the callers attach the path. `open_image` refuses an image with more
pixels than `max_pixels` (default Pillow's MAX_IMAGE_PIXELS) from its header, and promotes Pillow's
own warning to an error, so a tiny file that claims gigapixels is never decoded.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

_MODE_NAMES = {
    "L": "grayscale (mode L)", "LA": "grayscale+alpha (mode LA)", "1": "1-bit (mode 1)",
    "P": "palette (mode P)", "CMYK": "CMYK", "RGBA": "RGBA (has alpha)", "I;16": "16-bit (mode I;16)",
    "I;16B": "16-bit (mode I;16B)", "I;16L": "16-bit (mode I;16L)", "I": "32-bit integer (mode I)",
    "F": "32-bit float (mode F)", "YCbCr": "YCbCr", "LAB": "LAB", "HSV": "HSV",
}


class ImageProblem(ValueError):
    """A file is not a usable image; str() is the reason (the caller names the file)."""


class TooManyPixels(ImageProblem):
    """An image over the pixel limit (a decompression bomb): refused from its header, never decoded.
    Its own class so that a server can answer it as "too large" rather than "not an image"."""


@contextmanager
def open_image(path: str | Path, *, max_pixels: int | None = None) -> Iterator[Image.Image]:
    """The image at `path` with its header read and checked (pixels not decoded yet: `load_pixels`),
    closed on exit. Missing, non-regular and empty files, files Pillow cannot identify, and images
    of more than `max_pixels` pixels (default `Image.MAX_IMAGE_PIXELS`) are ImageProblems."""
    path = Path(path)
    if not path.exists():
        raise ImageProblem("file not found")
    if not path.is_file():
        raise ImageProblem("not a regular file")
    if path.stat().st_size == 0:
        raise ImageProblem("empty file (0 bytes)")
    limit = pixel_limit(max_pixels)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse the whole range.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooManyPixels(f"decompression bomb refused ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageProblem("not a readable image (not an image file, or corrupt: Pillow cannot identify it)") from exc
    except OSError as exc:
        raise ImageProblem(f"unreadable ({exc})") from exc
    with im:
        w, h = im.size
        if limit is not None and w * h > limit:
            raise TooManyPixels(f"decompression bomb refused ({w}x{h} = {w * h} pixels, over the limit of {limit})")
        yield im


def pixel_limit(max_pixels: int | None) -> int | None:
    """The most pixels an image may have: `max_pixels`, else Pillow's MAX_IMAGE_PIXELS (None: no limit)."""
    return Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels


def load_pixels(im: Image.Image) -> None:
    """Decode an image from `open_image`; truncated and corrupt data are ImageProblems."""
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc)
        if "truncated" in msg or isinstance(exc, EOFError):
            raise ImageProblem(f"truncated image data ({msg})") from exc
        raise ImageProblem(f"corrupt image data ({msg})") from exc


def read_rgb(path: str | Path) -> np.ndarray:
    """An 8-bit RGB image as uint8 (H, W, 3). Any other mode is a problem, not silently converted:
    a grayscale or CMYK face in the training set is a data bug worth seeing."""
    with open_image(path) as im:
        if im.format not in ("JPEG", "PNG"):
            raise ImageProblem(f"unexpected format {im.format} (expected JPEG)")
        if im.mode != "RGB":
            raise ImageProblem(f"{_MODE_NAMES.get(im.mode, 'mode ' + im.mode)} image, expected 8-bit RGB")
        load_pixels(im)
        return np.asarray(im)


def read_mask(path: str | Path, size: int) -> np.ndarray:
    """A part mask as bool (size, size): >127 is the part. 8-bit only; RGB masks use channel 0, as
    the release's own g_mask.py does."""
    with open_image(path) as im:
        if im.format != "PNG":
            raise ImageProblem(f"unexpected format {im.format} (expected PNG)")
        if im.mode not in ("L", "1", "RGB"):
            raise ImageProblem(f"{_MODE_NAMES.get(im.mode, 'mode ' + im.mode)} mask, expected 8-bit 0/255")
        if im.size != (size, size):
            raise ImageProblem(f"mask is {im.size[0]}x{im.size[1]}, expected {size}x{size}")
        load_pixels(im)
        a = np.asarray(im)
    if a.ndim == 3:
        a = a[..., 0]
    return a > 127
