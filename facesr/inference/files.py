"""The file runner behind `facesr upscale`: inputs (files and folders) to output names, then every
input upscaled into the output folder; one bad input never stops the others."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from facesr.data.imageio import pixel_limit
from facesr.data.util import progress
from facesr.fileio import atomic_write_text
from facesr.inference.errors import BadImageError, InferenceError, OutputClashError, OutputTooLargeError
from facesr.inference.images import read_image
from facesr.inference.lowres import LR_SIZE, to_lr
from facesr.inference.photos import default_detector_device, upscale_photo
from facesr.inference.render import compare_strip, parsing_overlay, save_atomic, tensor_to_pil
from facesr.inference.upscaler import Upscaler

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}


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
    limit = pixel_limit(max_pixels)
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
    if save_parsing and not upscaler.predicts_parsing:
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


def _read_each(items, report: RunReport, *, max_pixels, desc: str) -> Iterator[tuple[Path, Path, Image.Image]]:
    """(source, relative output path, image) of each readable input; the unreadable ones go to report.errors."""
    for src, rel in progress(items, total=len(items), desc=desc):
        try:
            loaded = read_image(src, max_pixels=max_pixels)
        except BadImageError as exc:
            report.errors.append(str(exc))
            continue
        report.notes += [f"{src}: {n}" for n in loaded.notes]
        yield src, rel, loaded.image


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

    for src, rel, image in _read_each(items, report, max_pixels=max_pixels, desc="upscale"):
        w, h = image.size
        if abs(w - h) > 0.05 * max(w, h):
            report.notes.append(f"{src}: {w}x{h} is not square; resized to a square crop (use --faces auto for photos)")
        pending.append((src, rel, image))
        if len(pending) >= batch:
            flush()
    flush()


def _run_photos(items, out_dir: Path, up: Upscaler, report: RunReport, *, size, compare, save_parsing,
                batch, photo_scale, min_score, max_pixels) -> None:
    from facesr.faces import DetectorUnavailableError

    detector_device = default_detector_device(up)
    for src, rel, image in _read_each(items, report, max_pixels=max_pixels, desc="photos"):
        try:
            _upscale_photo(src, rel, image, out_dir, up, report, size=size, compare=compare,
                           save_parsing=save_parsing, batch=batch, photo_scale=photo_scale,
                           min_score=min_score, detector_device=detector_device, max_pixels=max_pixels)
        except DetectorUnavailableError:
            raise
        except Exception as exc:  # one photo's failure must not lose the others
            report.errors.append(f"{src}: failed ({type(exc).__name__}: {exc})")


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
