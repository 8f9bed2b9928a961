"""Using a trained model: `facesr.load(...)` and the `facesr upscale` command.

`load(source)` accepts an exported generator file (`models/train/method1.pt`), an MLflow URI
(`models:/facesr-method1/latest`, `runs:/<id>/model`) or model folder, or a bare name (`method1`,
`method2`, `srresnet`, `bicubic`) resolved in the pipeline's `models/` folders, and returns an
`Upscaler`. Every source ends in a generator file read weights-only; pickled MLflow pytorch models
need `allow_pickle=True` (docs/upscale.md).

Crops are brought to the model's 16x16 LR the way training made its LR (SPEC "Downscaling"): the
image is resized to 128x128, then to 16x16, both with Pillow's antialiased bicubic; a 16x16 input
is used as is. Whole photos (`--faces auto`) go through facesr.faces: detect, align, SR, paste.

Input policy (docs/upscale.md): palette, grayscale, 1-bit, alpha, CMYK and 16-bit grayscale images
are converted to 8-bit RGB with a note naming the file; float and 32-bit integer images (no defined
range), non-images, empty and truncated files and decompression bombs are rejected with an error
naming the file. One bad input never stops the others; the exit code says whether any failed.

Only the standard library, numpy, Pillow and facesr.fileio are imported at module level (`facesr.cli`
imports this).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facesr.fileio import atomic_open, atomic_write_text

LR_SIZE = 16
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
URI_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/", "file:", "s3://", "gs://", "http://", "https://")
# name -> where the pipeline writes it, relative to a models folder (dvc.yaml's outs)
PIPELINE_FILES = {"method2": "gan/method2.pt"}
DEFAULT_MODEL = "method1"

# One colour per parsing channel, in SPEC.md's order: skin, l_brow, r_brow, l_eye, r_eye, nose,
# mouth, u_lip, l_lip, l_ear, r_ear. Left/right pairs share a hue so the overlay reads at a glance.
PARSING_COLOURS = np.array(
    [[255, 204, 153], [153, 51, 0], [204, 102, 0], [0, 102, 255], [0, 204, 255], [0, 204, 0],
     [255, 0, 102], [204, 0, 0], [255, 80, 80], [153, 0, 204], [204, 102, 255]], dtype=np.float32
) / 255.0


class InferenceError(ValueError):
    """Base class of the errors of `facesr upscale` and `facesr.load`."""


class BadImageError(InferenceError):
    """An input file that is not a usable image; the message names the file and the problem."""


class ModelSourceError(InferenceError):
    """A model source (path, MLflow URI, name) that does not give a usable model."""


class OutputClashError(InferenceError):
    """Two inputs of one call would be written to the same output file."""


class OutputTooLargeError(InferenceError):
    """An output image would have more pixels than inputs may have."""


# ---------------------------------------------------------------------------------------------------
# Reading images
# ---------------------------------------------------------------------------------------------------


@dataclass
class LoadedImage:
    path: Path
    image: Image.Image  # 8-bit RGB
    notes: list[str] = field(default_factory=list)


def _to_rgb(im: Image.Image, where: str) -> tuple[Image.Image, list[str]]:
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
            return _flatten_alpha(im), [note + ", transparent pixels put on white"]
        return im.convert("RGB"), [note]
    if mode in ("RGBA", "LA", "RGBa", "La"):
        return _flatten_alpha(im.convert("RGBA")), ["alpha channel dropped (transparent pixels put on white)"]
    if mode in ("L", "1"):
        return im.convert("RGB"), ["grayscale image converted to RGB"]
    try:
        return im.convert("RGB"), [f"mode {mode} converted to RGB"]
    except (ValueError, OSError) as exc:
        raise BadImageError(f"{where}: image mode {mode} cannot be converted to RGB ({exc})") from exc


def _flatten_alpha(rgba: Image.Image) -> Image.Image:
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def read_image(path: str | Path, *, max_pixels: int | None = None) -> LoadedImage:
    """An input image as 8-bit RGB with notes, or a BadImageError naming the file and the problem.

    `max_pixels` (default Pillow's `Image.MAX_IMAGE_PIXELS`) caps width x height; a file claiming
    more is refused from its header, before any pixel is decoded.
    """
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise BadImageError(f"{where}: file not found")
    if not path.is_file():
        raise BadImageError(f"{where}: not a regular file")
    if path.stat().st_size == 0:
        raise BadImageError(f"{where}: empty file (0 bytes)")
    limit = _pixel_limit(max_pixels)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse the whole range.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(f"{where}: refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise BadImageError(f"{where}: not an image (Pillow cannot identify the file)") from exc
    except OSError as exc:
        raise BadImageError(f"{where}: unreadable ({exc})") from exc
    with im:
        w, h = im.size
        if limit is not None and w * h > limit:
            raise BadImageError(f"{where}: refused as a possible decompression bomb "
                                f"({w}x{h} = {w * h} pixels, limit {limit})")
        try:
            im.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            msg = str(exc)
            if "truncated" in msg or isinstance(exc, EOFError):
                raise BadImageError(f"{where}: truncated image file ({msg})") from exc
            raise BadImageError(f"{where}: corrupt image data ({msg})") from exc
        if getattr(im, "n_frames", 1) > 1:
            notes_frames = [f"{im.n_frames} frames, the first is used"]
        else:
            notes_frames = []
        im = ImageOps.exif_transpose(im) or im
        rgb, notes = _to_rgb(im, where)
        rgb.load()
    return LoadedImage(path, rgb, notes + notes_frames)


# ---------------------------------------------------------------------------------------------------
# Loading a model
# ---------------------------------------------------------------------------------------------------


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def model_search_dirs() -> list[Path]:
    """Where a bare model name is looked up, in order: each folder of `$FACESR_MODELS`
    (os.pathsep-separated), `./models`, and the `models/` folder of this checkout."""
    dirs = [Path(p) for p in os.environ.get("FACESR_MODELS", "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "models", Path(__file__).resolve().parents[1] / "models"]
    seen, out = set(), []
    for d in dirs:
        key = str(d.resolve()) if d.exists() else str(d)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def resolve_name(name: str) -> Path:
    """`models/<stage>/<name>.pt` of the pipeline for a bare name (method1 -> train/method1.pt,
    method2 -> gan/method2.pt, otherwise train/ then any stage folder)."""
    tried = []
    for root in model_search_dirs():
        candidates = [root / PIPELINE_FILES[name]] if name in PIPELINE_FILES else []
        candidates += [root / "train" / f"{name}.pt", root / "gan" / f"{name}.pt"]
        candidates += sorted(root.glob(f"*/{name}.pt"))
        for c in candidates:
            if c.is_file():
                return c
            tried.append(str(c))
    where = ", ".join(dict.fromkeys(str(r) for r in model_search_dirs()))
    raise ModelSourceError(
        f"model '{name}': no models/<stage>/{name}.pt under {where}; train it with `dvc repro` "
        "(or `make demo`), pass a checkpoint path, or an MLflow URI such as models:/facesr-method1/latest"
    )


def _is_uri(source: str) -> bool:
    return source.startswith(URI_SCHEMES)


def load(source: Any = DEFAULT_MODEL, device: str | None = None, *, allow_pickle: bool = False) -> Upscaler:
    """An `Upscaler` for `source`: a generator file, an MLflow URI or model folder, a pipeline name,
    or a module.

    Nothing is unpickled: generator files are read with `torch.load(weights_only=True)`, and an
    MLflow model gives its generator file (logged by `facesr.mlflow_model.log_generator`), read the
    same way. An MLflow pytorch model (pickled: what facesr registered before) is refused unless
    `allow_pickle=True`, which unpickles it with a warning: unpickling runs whatever code the file
    holds, so allow it only for a model from a registry you trust.
    """
    import torch
    from torch import nn

    from facesr.models import GeneratorFileError, build_model, load_generator

    device = device or _default_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelSourceError(f"device {device!r} requested but no CUDA GPU is available")
    if isinstance(source, nn.Module):
        spec = getattr(source, "spec", {})
        return Upscaler(source, device=device, name=spec.get("model", type(source).__name__),
                        meta=dict(spec), source="<module>")
    src = str(source)
    if src == "bicubic":
        model = build_model("bicubic")
        return Upscaler(model, device=device, name="bicubic", meta=dict(model.spec), source="bicubic")
    if _is_uri(src):
        return _load_mlflow(src, device, allow_pickle)
    path = Path(src)
    if path.is_dir() and (path / "MLmodel").is_file():
        return _load_mlflow(str(path), device, allow_pickle)
    if not path.exists() and path.suffix == "" and os.sep not in src and "/" not in src:
        path = resolve_name(src)
    if not path.exists():
        raise ModelSourceError(f"{path}: model file not found")
    try:
        model, meta = load_generator(path, map_location=device)
    except GeneratorFileError as exc:
        raise ModelSourceError(str(exc)) from exc
    return Upscaler(model, device=device, name=meta["model"], meta=meta, source=str(path))


class PickleLoadWarning(UserWarning):
    """A model is being unpickled because the caller allowed it (`allow_pickle`, `--allow-pickle`)."""


def _load_mlflow(source: str, device: str, allow_pickle: bool) -> Upscaler:
    import mlflow

    from facesr.mlflow_model import GENERATOR_ARTIFACT, NotAFacesrModelError, generator_file
    from facesr.models import GeneratorFileError, load_generator
    from facesr.services import mlflow_tracking_uri

    mlflow.set_tracking_uri(mlflow_tracking_uri())
    with tempfile.TemporaryDirectory(prefix="facesr-model-") as tmp:
        try:
            path, mlmodel = generator_file(source, Path(tmp))
        except NotAFacesrModelError as exc:
            raise ModelSourceError(str(exc)) from exc
        except Exception as exc:  # MlflowException, OSError, YAML errors: all mean "no model here"
            raise ModelSourceError(f"{source}: cannot read an MLflow model ({type(exc).__name__}: {exc})") from exc
        if path is not None:
            try:
                model, meta = load_generator(path, map_location=device)
            except GeneratorFileError as exc:
                raise ModelSourceError(f"{source}: {exc}") from exc
            return Upscaler(model, device=device, name=meta["model"], meta=meta, source=source)
    if "pytorch" not in mlmodel.flavors:
        raise ModelSourceError(f"{source}: not a facesr model (its MLmodel has no '{GENERATOR_ARTIFACT}' artifact "
                               f"and no pytorch flavour; flavours: {', '.join(mlmodel.flavors) or 'none'})")
    if not allow_pickle:
        raise ModelSourceError(
            f"{source}: refused to load an MLflow pytorch model: mlflow.pytorch.load_model unpickles it, and a "
            "pickle can run any code. facesr registers weights-only models now (facesr.mlflow_model.log_generator); "
            "models registered before that are pickles. If you trust where this one comes from, pass --allow-pickle "
            "(facesr.load(..., allow_pickle=True)), or register its generator file again."
        )
    warnings.warn(f"{source}: unpickling an MLflow pytorch model (allow_pickle): this runs any code the pickle "
                  "holds; do it only for a model from a registry you trust", PickleLoadWarning, stacklevel=3)
    import mlflow.pytorch

    try:
        model = mlflow.pytorch.load_model(source, map_location=device)
    except Exception as exc:  # MlflowException, OSError, unpickling errors: all mean "no model here"
        raise ModelSourceError(f"{source}: cannot load an MLflow pytorch model ({type(exc).__name__}: {exc})") from exc
    spec = getattr(model, "spec", None) or {}
    return Upscaler(model, device=device, name=spec.get("model", type(model).__name__), meta=dict(spec),
                    source=source)


# ---------------------------------------------------------------------------------------------------
# The upscaler
# ---------------------------------------------------------------------------------------------------


@dataclass
class Prediction:
    """Model outputs for a batch: sr (B,3,H,W) clamped to [0,1]; parsing (B,P,H,W) or None."""

    sr: Any
    parsing: Any = None


def to_lr(image: Image.Image, hr_size: int) -> Image.Image:
    """The 16x16 LR of a face crop, made as training made it (resize to HR, then to LR, bicubic AA)."""
    if image.size == (LR_SIZE, LR_SIZE):
        return image
    if image.size != (hr_size, hr_size):
        image = image.resize((hr_size, hr_size), Image.BICUBIC)
    return image.resize((LR_SIZE, LR_SIZE), Image.BICUBIC)


class Upscaler:
    """A loaded generator and the conversions around it. `upscale(img)` gives back the input's kind:
    PIL.Image -> PIL.Image (RGB), ndarray (H,W,3 uint8) -> ndarray uint8, tensor (3,H,W) or (B,3,H,W)
    float [0,1] -> tensor float [0,1] on the input's device."""

    def __init__(self, model, *, device: str, name: str, meta: dict | None = None, source: str = ""):
        self.device = device
        self.model = model.to(device).eval()
        self.name = name
        self.meta = meta or {}
        self.source = source
        upscale = (self.meta.get("model_args") or {}).get("upscale", 8)
        self.scale = int(upscale)
        self.hr_size = LR_SIZE * self.scale

    def __repr__(self) -> str:
        return f"Upscaler(model={self.name!r}, source={self.source!r}, device={self.device!r})"

    def predict(self, lr) -> Prediction:
        """SR of a float LR batch (B,3,16,16) in [0,1]; parsing maps when the model predicts them."""
        import torch

        from facesr.models import sr_of

        if lr.ndim != 4 or lr.shape[1] != 3 or tuple(lr.shape[-2:]) != (LR_SIZE, LR_SIZE):
            raise InferenceError(f"predict expects an LR batch (B,3,{LR_SIZE},{LR_SIZE}), got {tuple(lr.shape)}")
        with torch.inference_mode():
            out = self.model(lr.to(self.device, torch.float32))
        parsing = out[1] if isinstance(out, (tuple, list)) and len(out) == 3 else None
        sr = sr_of(out).clamp(0.0, 1.0)
        return Prediction(sr=sr, parsing=parsing)

    def lr_tensor(self, images: Sequence[Image.Image]):
        import torch

        arr = np.stack([np.asarray(to_lr(im.convert("RGB"), self.hr_size)) for im in images])
        return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(255.0)

    def upscale_batch(self, images: Sequence, size: int | None = None, batch_size: int = 64) -> list:
        """`upscale` over a list, `batch_size` faces per forward pass; each item keeps its kind."""
        return [out for start in range(0, len(images), batch_size)
                for out in self._upscale_chunk(images[start:start + batch_size], size)]

    def upscale(self, image, size: int | None = None):
        """The SR face of one crop (PIL.Image, ndarray HWC uint8, or tensor CHW/BCHW float)."""
        import torch

        if isinstance(image, torch.Tensor) and image.ndim == 4:
            return self._upscale_tensor(image, size)
        return self._upscale_chunk([image], size)[0]

    def upscale_photo(self, photo, *, photo_scale: int = 1, min_score: float = 0.9) -> PhotoResult:
        """Every face of a whole photo (PIL.Image or uint8 ndarray) super-resolved and pasted back."""
        pil = photo if isinstance(photo, Image.Image) else _ndarray_to_pil(np.asarray(photo), 0)
        return upscale_photo(pil, self, photo_scale=photo_scale, min_score=min_score)

    def _upscale_chunk(self, images: Sequence, size: int | None) -> list:
        import torch

        kinds = []
        pils = []
        for i, img in enumerate(images):
            if isinstance(img, torch.Tensor):
                kinds.append(("tensor", img))
                pils.append(None)
            elif isinstance(img, Image.Image):
                kinds.append(("pil", img))
                pils.append(_to_rgb(img, f"image {i}")[0])
            elif isinstance(img, np.ndarray):
                kinds.append(("ndarray", img))
                pils.append(_ndarray_to_pil(img, i))
            else:
                raise InferenceError(f"image {i}: expected a PIL.Image, a numpy array or a torch tensor, "
                                     f"got {type(img).__name__}")
        results: list = [None] * len(images)
        pil_idx = [i for i, p in enumerate(pils) if p is not None]
        if pil_idx:
            pred = self.predict(self.lr_tensor([pils[i] for i in pil_idx]))
            for j, i in enumerate(pil_idx):
                out = tensor_to_pil(pred.sr[j])
                if size and size != out.size[0]:
                    out = out.resize((size, size), Image.BICUBIC)
                results[i] = out if kinds[i][0] == "pil" else np.asarray(out)
        for i, (kind, img) in enumerate(kinds):
            if kind == "tensor":
                results[i] = self._upscale_tensor(img, size)
        return results

    def _upscale_tensor(self, t, size: int | None):
        import torch
        import torch.nn.functional as F

        if t.ndim not in (3, 4) or t.shape[-3] != 3:
            raise InferenceError(f"expected a tensor (3,H,W) or (B,3,H,W), got {tuple(t.shape)}")
        if not torch.is_floating_point(t):
            raise InferenceError(f"expected a float tensor in [0,1], got {t.dtype}")
        batch = t.unsqueeze(0) if t.ndim == 3 else t
        x = batch.float().clamp(0, 1)
        if tuple(x.shape[-2:]) != (LR_SIZE, LR_SIZE):
            if tuple(x.shape[-2:]) != (self.hr_size, self.hr_size):
                x = F.interpolate(x, size=(self.hr_size, self.hr_size), mode="bicubic", antialias=True,
                                  align_corners=False).clamp(0, 1)
            x = F.interpolate(x, size=(LR_SIZE, LR_SIZE), mode="bicubic", antialias=True,
                              align_corners=False).clamp(0, 1)
        sr = self.predict(x).sr
        if size and size != sr.shape[-1]:
            sr = F.interpolate(sr, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
        sr = sr.to(t.device)
        return sr[0] if t.ndim == 3 else sr


def _ndarray_to_pil(a: np.ndarray, i: int) -> Image.Image:
    if a.dtype != np.uint8:
        raise InferenceError(f"image {i}: expected a uint8 array (H,W,3) or (H,W), got {a.dtype}")
    if a.ndim == 2:
        return Image.fromarray(a, mode="L").convert("RGB")
    if a.ndim == 3 and a.shape[2] == 3:
        return Image.fromarray(a, mode="RGB")
    if a.ndim == 3 and a.shape[2] == 4:
        return _flatten_alpha(Image.fromarray(a, mode="RGBA"))
    raise InferenceError(f"image {i}: expected an array (H,W,3) or (H,W), got shape {a.shape}")


def tensor_to_pil(t) -> Image.Image:
    """A (3,H,W) float tensor in [0,1] as an 8-bit RGB image (rounded, as metrics quantise)."""
    a = t.detach().clamp(0, 1).mul(255).round().to("cpu").byte().permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(a), mode="RGB")


def parsing_overlay(sr: Image.Image, parsing) -> Image.Image:
    """The parsing maps (P,H,W) in [0,1] laid over the SR face, skin first, parts on top."""
    base = np.asarray(sr.convert("RGB"), dtype=np.float32) / 255.0
    maps = parsing.detach().float().clamp(0, 1).cpu().numpy()
    if maps.shape[-2:] != base.shape[:2]:
        import torch
        import torch.nn.functional as F

        maps = F.interpolate(torch.from_numpy(maps)[None], size=base.shape[:2], mode="bilinear",
                             align_corners=False)[0].numpy()
    out = base.copy()
    for c in range(min(len(maps), len(PARSING_COLOURS))):
        alpha = 0.55 * maps[c][..., None]
        out = out * (1 - alpha) + PARSING_COLOURS[c] * alpha
    return Image.fromarray(np.clip(np.rint(out * 255), 0, 255).astype(np.uint8), mode="RGB")


def compare_strip(lr: Image.Image, bicubic: Image.Image, sr: Image.Image, panel: int) -> Image.Image:
    """LR (nearest, to show its pixels) | Bicubic | SR, each `panel` x `panel`."""
    strip = Image.new("RGB", (3 * panel + 2 * 4, panel), (255, 255, 255))
    for k, im in enumerate([lr.resize((panel, panel), Image.NEAREST),
                            bicubic.resize((panel, panel), Image.BICUBIC) if bicubic.size[0] != panel else bicubic,
                            sr.resize((panel, panel), Image.BICUBIC) if sr.size[0] != panel else sr]):
        strip.paste(im, (k * (panel + 4), 0))
    return strip


# ---------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------


def save_atomic(image: Image.Image, path: Path) -> Path:
    with atomic_open(path, "wb") as fh:
        image.save(fh, format="PNG")
    return path


def collect_inputs(inputs: Iterable[str | Path]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(file, output name relative to OUT) for every input; folders give their image files,
    recursively, with their sub-folders kept. Missing paths are returned as errors.

    Every output name is unique. A file reached twice under one name (named twice, or as a file
    and inside a folder) is done once; `a.jpg` beside `a.png` becomes `a_jpg.png` (the PNG keeps
    `a.png`); inputs that would still share an output (`x/a.jpg` and `y/a.jpg` passed as files)
    raise OutputClashError, before anything is written.
    """
    items: list[tuple[Path, Path]] = []
    errors: list[str] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                errors.append(f"{p}: folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            items += [(f, f.relative_to(p).with_suffix(".png")) for f in files]
        elif p.exists():
            items.append((p, Path(p.name).with_suffix(".png")))
        else:
            errors.append(f"{p}: no such file or folder")
    seen: set[tuple[Path, Path]] = set()
    unique = []
    for src, rel in items:
        if (src.resolve(), rel) not in seen:
            seen.add((src.resolve(), rel))
            unique.append((src, rel))
    sharing: dict[Path, int] = {}
    for _, rel in unique:
        sharing[rel] = sharing.get(rel, 0) + 1
    named = [(src, rel.with_name(f"{rel.stem}_{src.suffix.lstrip('.')}.png"))
             if sharing[rel] > 1 and src.suffix != ".png" else (src, rel) for src, rel in unique]
    owners: dict[Path, list[Path]] = {}
    for src, rel in named:
        owners.setdefault(rel, []).append(src)
    clashes = [f"{rel} <- {', '.join(map(str, srcs))}" for rel, srcs in owners.items() if len(srcs) > 1]
    if clashes:
        raise OutputClashError(
            "these inputs would be written to the same output file, nothing was written: " + "; ".join(clashes)
            + ". Pass the folder that holds them instead (its sub-folders are kept under the output folder), "
            "or upscale them in separate calls with different -o folders"
        )
    return named, errors


def _progress(iterable, total: int, desc: str):
    from tqdm import tqdm

    disable = bool(os.environ.get("FACESR_NO_PROGRESS")) or not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, unit="img", disable=disable)


@dataclass
class RunReport:
    written: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)  # compare strips and parsing overlays
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    faces: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def upscale_files(inputs: Sequence[str | Path], out_dir: str | Path, *, upscaler: Upscaler,
                  size: int | None = None, faces: str = "crop", compare: bool = False,
                  save_parsing: bool = False, batch: int = 16, photo_scale: int = 1,
                  min_score: float = 0.9, max_pixels: int | None = None) -> RunReport:
    """Upscale every input into `out_dir`; each file's problem is recorded, the others go on."""
    if faces not in ("crop", "auto"):
        raise InferenceError(f"--faces must be crop or auto, got {faces!r}")
    if batch < 1:
        raise InferenceError(f"--batch must be >= 1, got {batch}")
    if size is not None and size < 1:
        raise InferenceError(f"--size must be >= 1, got {size}")
    if photo_scale < 1:
        raise InferenceError(f"--photo-scale must be >= 1, got {photo_scale}")
    limit = _pixel_limit(max_pixels)
    if size is not None and limit is not None and size * (3 * size + 8 if compare else size) > limit:
        raise InferenceError(f"--size {size} makes outputs of more than {limit} pixels, the limit inputs get "
                             "too (Pillow's Image.MAX_IMAGE_PIXELS); use a smaller --size")
    out_dir = Path(out_dir)
    report = RunReport()
    items, report.errors = collect_inputs(inputs)
    extras = [(name, flag) for name, flag, on in (("compare", "--compare", compare),
                                                  ("parsing", "--save-parsing", save_parsing)) if on]
    for src, rel in items:
        for name, flag in extras:
            if rel.parts[0] == name:
                raise OutputClashError(f"{src}: its output {out_dir / rel} is in {out_dir / name}, where {flag} "
                                       f"writes its images; nothing was written. Rename the input's "
                                       f"'{name}' folder, or leave out {flag}")
    if save_parsing and not _returns_parsing(upscaler):
        report.notes.append(f"--save-parsing: model '{upscaler.name}' predicts no parsing maps "
                            "(only method1 and method2 do); no parsing overlays written")
        save_parsing = False
    opts = dict(size=size, compare=compare, save_parsing=save_parsing)
    if faces == "crop":
        _run_crops(items, out_dir, upscaler, report, batch=batch, max_pixels=max_pixels, **opts)
    else:
        _run_photos(items, out_dir, upscaler, report, batch=batch, photo_scale=photo_scale,
                    min_score=min_score, max_pixels=max_pixels, **opts)
    if faces == "auto" and report.faces:
        atomic_write_text(out_dir / "faces.json", json.dumps(report.faces, indent=1))
    return report


def _pixel_limit(max_pixels: int | None) -> int | None:
    """The most pixels an image may have, in or out: `max_pixels`, else Pillow's MAX_IMAGE_PIXELS."""
    return Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels


def _returns_parsing(upscaler: Upscaler) -> bool:
    import torch

    return upscaler.predict(torch.zeros(1, 3, LR_SIZE, LR_SIZE)).parsing is not None


def _write_extras(out_dir: Path, rel: Path, lr: Image.Image, sr: Image.Image, parsing, *,
                  compare: bool, save_parsing: bool, panel: int, report: RunReport) -> None:
    import torch

    from facesr.models.bicubic import bicubic_upsample

    if compare:
        lr_t = torch.from_numpy(np.array(lr)).permute(2, 0, 1)[None].float().div(255)
        bic = tensor_to_pil(bicubic_upsample(lr_t, sr.size[0] // LR_SIZE).clamp(0, 1)[0])
        report.extras.append(str(save_atomic(compare_strip(lr, bic, sr, panel), out_dir / "compare" / rel)))
    if save_parsing and parsing is not None:
        overlay = parsing_overlay(sr, parsing)
        if overlay.size[0] != panel:
            overlay = overlay.resize((panel, panel), Image.BICUBIC)
        report.extras.append(str(save_atomic(overlay, out_dir / "parsing" / rel)))


def _run_crops(items, out_dir: Path, up: Upscaler, report: RunReport, *, size, compare, save_parsing,
               batch, max_pixels) -> None:
    pending: list[tuple[Path, Path, Image.Image]] = []

    def flush() -> None:
        if not pending:
            return
        lrs = [to_lr(im, up.hr_size) for _, _, im in pending]
        try:
            pred = up.predict(up.lr_tensor(lrs))
        except Exception as exc:  # a failing batch must not take the finished ones with it
            report.errors += [f"{src}: model failed ({type(exc).__name__}: {exc})" for src, _, _ in pending]
            pending.clear()
            return
        for j, (src, rel, _) in enumerate(pending):
            try:
                sr = tensor_to_pil(pred.sr[j])
                panel = size or sr.size[0]
                final = sr if panel == sr.size[0] else sr.resize((panel, panel), Image.BICUBIC)
                report.written.append(str(save_atomic(final, out_dir / rel)))
                _write_extras(out_dir, rel, lrs[j], sr, None if pred.parsing is None else pred.parsing[j],
                              compare=compare, save_parsing=save_parsing, panel=panel, report=report)
            except OSError as exc:
                report.errors.append(f"{src}: cannot write output ({exc})")
        pending.clear()

    for src, rel in _progress(items, len(items), "upscale"):
        try:
            loaded = read_image(src, max_pixels=max_pixels)
        except BadImageError as exc:
            report.errors.append(str(exc))
            continue
        w, h = loaded.image.size
        if abs(w - h) > 0.05 * max(w, h):
            loaded.notes.append(f"{w}x{h} is not square; resized to a square crop (use --faces auto for photos)")
        report.notes += [f"{src}: {n}" for n in loaded.notes]
        pending.append((src, rel, loaded.image))
        if len(pending) >= batch:
            flush()
    flush()


def _run_photos(items, out_dir: Path, up: Upscaler, report: RunReport, *, size, compare, save_parsing,
                batch, photo_scale, min_score, max_pixels) -> None:
    from facesr.faces import DetectorUnavailableError

    detector_device = "cuda" if str(up.device).startswith("cuda") else "cpu"
    for src, rel in _progress(items, len(items), "photos"):
        try:
            loaded = read_image(src, max_pixels=max_pixels)
        except BadImageError as exc:
            report.errors.append(str(exc))
            continue
        report.notes += [f"{src}: {n}" for n in loaded.notes]
        try:
            _upscale_photo(src, rel, loaded.image, out_dir, up, report, size=size, compare=compare,
                           save_parsing=save_parsing, batch=batch, photo_scale=photo_scale,
                           min_score=min_score, detector_device=detector_device, max_pixels=max_pixels)
        except DetectorUnavailableError:
            raise
        except Exception as exc:  # one photo's failure must not lose the others
            report.errors.append(f"{src}: failed ({type(exc).__name__}: {exc})")


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


def upscale_photo(photo: Image.Image, up: Upscaler, *, batch: int = 16, photo_scale: int = 1,
                  min_score: float = 0.9, detector_device: str | None = None,
                  max_pixels: int | None = None) -> PhotoResult:
    """Detect, align, super-resolve and paste back every face of an RGB photo.

    Outside the returned mask the image holds the photo's own bytes (or its bicubic enlargement when
    `photo_scale` > 1). Raises NoFaceError when the detector finds no face, and OutputTooLargeError,
    before any work, when the enlarged photo would have more than `max_pixels` pixels (default
    Pillow's `Image.MAX_IMAGE_PIXELS`, the limit `read_image` puts on inputs).
    """
    from facesr.faces import NoFaceError, align_face, detect_faces, paste_face

    w, h = photo.size
    limit = _pixel_limit(max_pixels)
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
    device = detector_device or ("cuda" if str(up.device).startswith("cuda") else "cpu")
    found = detect_faces(photo, min_score=min_score, device=device)
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


def _upscale_photo(src: Path, rel: Path, photo: Image.Image, out_dir: Path, up: Upscaler, report: RunReport, *,
                   size, compare, save_parsing, batch, photo_scale, min_score, detector_device, max_pixels) -> None:
    from facesr.faces import NoFaceError

    try:
        res = upscale_photo(photo, up, batch=batch, photo_scale=photo_scale, min_score=min_score,
                            detector_device=detector_device, max_pixels=max_pixels)
    except (NoFaceError, OutputTooLargeError) as exc:
        report.errors.append(f"{src}: {exc}")
        return
    report.faces[str(src)] = [f.to_dict() for f in res.faces]
    try:
        report.written.append(str(save_atomic(Image.fromarray(res.image), out_dir / rel)))
        for k, (lr, sr, par) in enumerate(zip(res.lrs, res.srs, res.parsings)):
            face_rel = rel.with_name(f"{rel.stem}_face{k}{rel.suffix}")
            _write_extras(out_dir, face_rel, lr, sr, par, compare=compare, save_parsing=save_parsing,
                          panel=size or sr.size[0], report=report)
    except OSError as exc:
        report.errors.append(f"{src}: cannot write output ({exc})")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "upscale",
        help="super-resolve face crops or the faces in whole photos",
        description="Upscale face crops (any size -> 16x16 LR -> 128x128 SR) or, with --faces auto, "
                    "detect, align, super-resolve and paste back every face of whole photos.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, help="output folder (PNG files, same relative names)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="checkpoint path, MLflow URI (models:/facesr-method1/latest, runs:/ID/model), MLflow "
                        "model folder, or name resolved in models/*/NAME.pt (srresnet, method1, method2; bicubic "
                        f"needs none) (default {DEFAULT_MODEL})")
    p.add_argument("--allow-pickle", action="store_true",
                   help="also load MLflow pytorch models, which are pickles (facesr registered those before "
                        "its weights-only models): unpickling runs any code the file holds, so only for a "
                        "model from a registry you trust")
    p.add_argument("--size", type=int, default=None, help="output size of face crops (resized after SR)")
    p.add_argument("--faces", choices=("crop", "auto"), default="crop",
                   help="crop: inputs are aligned face crops; auto: detect faces in whole photos")
    p.add_argument("--photo-scale", type=int, default=1,
                   help="--faces auto: enlarge the photo by this factor (bicubic) before pasting the faces "
                        "(the result may have at most Pillow's Image.MAX_IMAGE_PIXELS pixels, as inputs)")
    p.add_argument("--min-score", type=float, default=0.9, help="--faces auto: detector score threshold")
    p.add_argument("--compare", action="store_true", help="also write compare/NAME.png: LR | Bicubic | SR")
    p.add_argument("--save-parsing", action="store_true",
                   help="also write parsing/NAME.png: the predicted parsing maps over the SR (method1/2)")
    p.add_argument("--batch", type=int, default=16, help="faces per forward pass")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--smoke-test", action="store_true",
                   help="run on at most 2 inputs (a quick check of model and paths)")
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    from facesr.faces import DetectorUnavailableError

    failure = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PickleLoadWarning)
        try:
            upscaler = load(args.model, device=args.device, allow_pickle=args.allow_pickle)
        except (InferenceError, ValueError) as exc:
            failure = exc
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 2
    inputs = args.inputs
    print(f"model: {upscaler.name} from {upscaler.source} on {upscaler.device}", file=sys.stderr)
    try:
        if args.smoke_test:
            items, _ = collect_inputs(inputs)
            inputs = [str(src) for src, _ in items[:2]] or inputs
        report = upscale_files(inputs, args.out, upscaler=upscaler, size=args.size, faces=args.faces,
                               compare=args.compare, save_parsing=args.save_parsing, batch=args.batch,
                               photo_scale=args.photo_scale, min_score=args.min_score)
    except (InferenceError, DetectorUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for src, found in report.faces.items():
        boxes = "; ".join(f"({', '.join(f'{v:.0f}' for v in f['box'])}) p={f['score']:.3f}" for f in found)
        print(f"{src}: {len(found)} face(s): {boxes}")
    extras = f" (+{len(report.extras)} compare/parsing)" if report.extras else ""
    print(f"wrote {len(report.written)} image(s) to {args.out}{extras}")
    if report.errors:
        print(f"{len(report.errors)} input(s) failed:", file=sys.stderr)
        for err in report.errors:
            print(f"  {err}", file=sys.stderr)
        return 1
    return 0
