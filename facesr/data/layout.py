"""The official CelebAMask-HQ layout (SPEC.md "Data"), and a scan of a folder in it.

    CelebAMask-HQ/CelebA-HQ-img/{id}.jpg
    CelebAMask-HQ/CelebAMask-HQ-mask-anno/{id // 2000}/{id:05d}_{part}.png
    CelebAMask-HQ/CelebA-HQ-to-CelebA-mapping.txt      (full release only)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from facesr.data.errors import BadFile, DataError

TOP = "CelebAMask-HQ"
IMG_DIR = "CelebA-HQ-img"
MASK_DIR = "CelebAMask-HQ-mask-anno"
MAPPING = "CelebA-HQ-to-CelebA-mapping.txt"
MASK_SIZE = 512
# The release's part names (its 19 classes are these 18 plus background).
RELEASE_PARTS = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
# SPEC.md's 11 parsing channels, in order: params.yaml's merge_masks.parts, so the channels of the
# prepared parsing maps, and the default `parts` of the region metrics (facesr.metrics.regions).
PARTS = ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip", "l_ear", "r_ear")
# The side of a prepared LR face (downscale.hr_size / downscale.scale: 128 / 8): what the generators
# take; a model's HR side is this times its `upscale` (facesr.models.predictor).
LR_SIZE = 16
# Files the release (or a mirror) ships beside the data; not stray.
KNOWN_EXTRA = {MAPPING, "README.md", "README.txt", "SOURCE_IDS.csv", "CelebAMask-HQ-attribute-anno.txt",
               "CelebAMask-HQ-pose-anno.txt", "LICENSE", "LICENSE.txt", "skipped.json"}

_IMG_RE = re.compile(r"^(0|[1-9][0-9]*)\.jpg$")
_MASK_RE = re.compile(r"^([0-9]{5,})_([a-z_]+)\.png$")


def mask_path(root: Path, idx: int, part: str) -> Path:
    return Path(root) / MASK_DIR / str(idx // 2000) / f"{idx:05d}_{part}.png"


def image_path(root: Path, idx: int) -> Path:
    return Path(root) / IMG_DIR / f"{idx}.jpg"


def find_root(path: str | Path) -> Path:
    """`path` itself if it holds CelebA-HQ-img/, else `path/CelebAMask-HQ`."""
    path = Path(path)
    for cand in (path, path / TOP):
        if (cand / IMG_DIR).is_dir():
            return cand
    raise DataError(f"{path}: not in the CelebAMask-HQ layout (no {IMG_DIR}/ in it or in {TOP}/)")


@dataclass
class Scan:
    """What a folder in the official layout holds: ids with their mask files, and stray files."""

    root: Path
    ids: list[int] = field(default_factory=list)
    masks: dict[int, dict[str, Path]] = field(default_factory=dict)
    bad: list[BadFile] = field(default_factory=list)


def scan(root: str | Path) -> Scan:
    """List images and part masks with os.scandir (fast on 300k files); collect stray files as bad.

    Bad here: files that match no pattern of the layout, masks in the wrong `id // 2000` folder or of an
    unknown part, masks without an image, and images without any mask file.
    """
    root = find_root(root)
    out = Scan(root=root)
    images: set[int] = set()
    with os.scandir(root / IMG_DIR) as it:
        for e in it:
            m = _IMG_RE.match(e.name)
            if m and e.is_file():
                images.add(int(m.group(1)))
            else:
                out.bad.append(BadFile(str(root / IMG_DIR / e.name), "stray file (expected {id}.jpg)"))
    masks: dict[int, dict[str, Path]] = {}
    mask_root = root / MASK_DIR
    if not mask_root.is_dir():
        raise DataError(f"{root}: no {MASK_DIR}/ folder")
    with os.scandir(mask_root) as groups:
        for g in groups:
            if not (g.is_dir() and g.name.isdigit()):
                out.bad.append(BadFile(str(mask_root / g.name), "stray entry (expected a {id // 2000} folder)"))
                continue
            with os.scandir(g.path) as it:
                for e in it:
                    p = Path(g.path) / e.name
                    m = _MASK_RE.match(e.name)
                    if not (m and e.is_file()):
                        out.bad.append(BadFile(str(p), "stray file (expected {id:05d}_{part}.png)"))
                        continue
                    idx, part = int(m.group(1)), m.group(2)
                    if part not in RELEASE_PARTS:
                        out.bad.append(BadFile(str(p), f"unknown part {part!r}"))
                    elif idx // 2000 != int(g.name) or e.name != f"{idx:05d}_{part}.png":
                        out.bad.append(BadFile(str(p), f"mask in the wrong place (expected {mask_path(root, idx, part)})"))
                    elif idx not in images:
                        out.bad.append(BadFile(str(p), f"mask without an image ({image_path(root, idx)} is absent)"))
                    else:
                        masks.setdefault(idx, {})[part] = p
    for idx in sorted(images):
        if idx in masks:
            out.ids.append(idx)
        else:
            out.bad.append(BadFile(str(image_path(root, idx)), "image without masks (no part file for this id)"))
    out.masks = {i: masks[i] for i in out.ids}
    for e in os.scandir(root):
        if e.name not in (IMG_DIR, MASK_DIR) and e.name not in KNOWN_EXTRA:
            out.bad.append(BadFile(str(root / e.name), "stray entry in the dataset folder"))
    return out
