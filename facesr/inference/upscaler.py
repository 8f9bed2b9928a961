"""The `Upscaler`: a loaded generator (run by a `facesr.models.predictor.Predictor`, or an exported
one by ONNX Runtime: `facesr.inference.onnx_runtime.OnnxPredictor`) and the conversions of images
of any kind around it.

Crops are brought to the model's LR the way training made its LR (`facesr.inference.lowres`); the
LR and HR sizes are the model's (`Predictor.lr_size`, `Predictor.hr_size` from its `upscale`).
Whole photos go through `facesr.inference.photos.upscale_photo(photo, upscaler)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from facesr.data.layout import LR_SIZE
from facesr.inference.errors import InferenceError
from facesr.inference.images import ndarray_to_pil, to_rgb
from facesr.inference.lowres import lr_tensor
from facesr.inference.render import tensor_to_pil


class Upscaler:
    """A loaded generator and the conversions around it. `upscale(img)` gives back the input's kind:
    PIL.Image -> PIL.Image (RGB), ndarray (H,W,3 uint8) -> ndarray uint8, tensor (3,H,W) or (B,3,H,W)
    float [0,1] -> tensor float [0,1] on the input's device.

    The model is a facesr generator: it returns a `facesr.models.SROutput` and declares
    `predicts_parsing`."""

    def __init__(self, model, *, device: str, name: str, meta: dict | None = None, source: str = "",
                 precision: str = "auto", channels_last: str | bool = "auto"):
        from facesr.models.predictor import Predictor

        # auto: bf16 autocast + channels_last where the device does bf16 fast, fp32 elsewhere
        self._setup(Predictor(model, device=device, precision=precision, channels_last=channels_last,
                              setting="Upscaler"), device=device, name=name, meta=meta, source=source,
                    runtime="torch")

    @classmethod
    def from_predictor(cls, predictor, *, device: str, name: str, meta: dict | None = None, source: str = "",
                       runtime: str) -> Upscaler:
        """An Upscaler over a ready predictor: anything with a Predictor's `__call__`, `precision`,
        `model`, `scale`, `hr_size` and `predicts_parsing` (the ONNX Runtime one,
        `facesr.inference.onnx_runtime.OnnxPredictor`); `runtime` names what runs it."""
        self = cls.__new__(cls)
        self._setup(predictor, device=device, name=name, meta=meta, source=source, runtime=runtime)
        return self

    def _setup(self, predictor, *, device: str, name: str, meta: dict | None, source: str, runtime: str) -> None:
        self.predictor = predictor
        self.runtime = runtime
        self.device = device
        self.precision = predictor.precision
        self.model = predictor.model
        self.name = name
        self.meta = meta or {}
        self.source = source
        self.scale = predictor.scale
        self.hr_size = predictor.hr_size

    def __repr__(self) -> str:
        return (f"Upscaler(model={self.name!r}, source={self.source!r}, device={self.device!r}, "
                f"runtime={self.runtime!r}, precision={self.precision.name!r})")

    @property
    def predicts_parsing(self) -> bool:
        """Whether `predict` gives parsing maps (Method 1 and 2 with their prior branch), as the model declares."""
        return self.predictor.predicts_parsing

    def predict(self, lr):
        """The `Prediction` (.sr, .parsing) of a float LR batch (B,3,16,16) in [0,1]; parsing maps when
        the model predicts them."""
        if lr.ndim != 4 or lr.shape[1] != 3 or tuple(lr.shape[-2:]) != (LR_SIZE, LR_SIZE):
            raise InferenceError(f"predict expects an LR batch (B,3,{LR_SIZE},{LR_SIZE}), got {tuple(lr.shape)}")
        return self.predictor(lr)

    def lr_tensor(self, images: Sequence[Image.Image]):
        """The LR batch of face crops for this model (`facesr.inference.lowres.lr_tensor`)."""
        return lr_tensor(images, self.hr_size)

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
                pils.append(to_rgb(img, f"image {i}")[0])
            elif isinstance(img, np.ndarray):
                kinds.append(("ndarray", img))
                pils.append(ndarray_to_pil(img, i))
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
