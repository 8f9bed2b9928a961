"""Safe image reading: every way a file can be unusable becomes an `ImageProblem` with a reason.

The reasons name the problem in words a user can act on (truncated, grayscale, 16-bit, wrong size,
decompression bomb), and the callers attach the path. Pillow's MAX_IMAGE_PIXELS guard is honoured
(its warning is promoted to an error) so a tiny file that claims gigapixels is never decoded.
"""

from __future__ import annotations

import warnings
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


def _open_checked(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageProblem(f"decompression bomb refused ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageProblem("not a readable image (corrupt or not an image file)") from exc
    except FileNotFoundError as exc:
        raise ImageProblem("file not found") from exc
    except OSError as exc:
        raise ImageProblem(f"unreadable ({exc})") from exc
    return im


def _load(im: Image.Image) -> None:
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
    path = Path(path)
    im = _open_checked(path)
    with im:
        if im.format not in ("JPEG", "PNG"):
            raise ImageProblem(f"unexpected format {im.format} (expected JPEG)")
        if im.mode != "RGB":
            raise ImageProblem(f"{_MODE_NAMES.get(im.mode, 'mode ' + im.mode)} image, expected 8-bit RGB")
        _load(im)
        return np.asarray(im)


def read_mask(path: str | Path, size: int) -> np.ndarray:
    """A part mask as bool (size, size): >127 is the part. 8-bit only; RGB masks use channel 0, as
    the release's own g_mask.py does."""
    path = Path(path)
    im = _open_checked(path)
    with im:
        if im.format != "PNG":
            raise ImageProblem(f"unexpected format {im.format} (expected PNG)")
        if im.mode not in ("L", "1", "RGB"):
            raise ImageProblem(f"{_MODE_NAMES.get(im.mode, 'mode ' + im.mode)} mask, expected 8-bit 0/255")
        if im.size != (size, size):
            raise ImageProblem(f"mask is {im.size[0]}x{im.size[1]}, expected {size}x{size}")
        _load(im)
        a = np.asarray(im)
    if a.ndim == 3:
        a = a[..., 0]
    return a > 127
