"""Running a generator: the one place an LR batch becomes fp32 SR images (and parsing maps).

Evaluation, validation during training, `facesr upscale` (the `Upscaler`) and the MLflow pyfunc
model all run their generator through a `Predictor`, so the forward pass is written once: the
autocast of the precision setting, the input's memory format, then the output as fp32 clamped to
[0, 1] (autocast leaves bf16 activations; the scores and images are always made from fp32).

It lives beside the models (not in facesr.inference) because the train and evaluate stages import
it, and their dvc.yaml deps already hold facesr/models.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from facesr.data.layout import LR_SIZE

if TYPE_CHECKING:  # importing this module stays cheap: torch is imported where it is used
    import torch
    from torch import nn

    from facesr.device import Precision

# `upscale` of a module that has no spec (an unpickled pre-registry MLflow model): the thesis' x8
DEFAULT_UPSCALE = 8


class Prediction(NamedTuple):
    """Model outputs for a batch: sr (B,3,H,W) fp32 clamped to [0,1]; parsing (B,P,H,W) fp32 or None."""

    sr: Any
    parsing: Any = None


def upscale_of(spec: Mapping[str, Any] | None) -> int:
    """The upscale factor of a generator: the `upscale` of the model_args in its spec (`model.spec`,
    which `build_model` fills with every constructor argument, or a generator file's meta)."""
    return int(((spec or {}).get("model_args") or {}).get("upscale", DEFAULT_UPSCALE))


class Predictor:
    """A generator ready to run: `predictor(lr)` gives the `Prediction` of an LR batch (B,3,h,w).

    The constructor moves `model` to `device`, puts it in eval mode and in the memory format of the
    resolved precision (`facesr.device.resolve_precision`: `precision` is "auto", "fp32", "bf16" or
    an already resolved `Precision`, which `channels_last` must then leave at "auto"). The forward
    runs under `torch.inference_mode()`, or `torch.no_grad()` with `inference_mode=False`, for
    outputs that go on into modules with trainable parameters (evaluate's LPIPS refuses inference
    tensors). `clamp_parsing` clamps the parsing maps to [0, 1] too (validation does, evaluation
    scores them as the model gives them).

    `scale`, `lr_size` and `hr_size` come from the model's spec (its `upscale`) and `LR_SIZE`.
    """

    def __init__(self, model: nn.Module, *, device: str | torch.device, precision: str | Precision = "auto",
                 channels_last: str | bool = "auto", setting: str = "Predictor", inference_mode: bool = True,
                 clamp_parsing: bool = False):
        from facesr.device import Precision, resolve_precision

        if isinstance(precision, Precision):
            if channels_last != "auto":
                raise ValueError(f"{setting}: channels_last {channels_last!r} given with a resolved Precision, "
                                 "which already says the memory format")
            self.precision = precision
        else:
            # auto: bf16 autocast + channels_last where the device does bf16 fast, fp32 elsewhere
            self.precision = resolve_precision(device, precision, channels_last, setting=setting)
        self.device = device
        self.model = self.prepare(model)
        self._autocast: Callable[[], contextlib.AbstractContextManager] = self.precision.autocast
        self._inputs: Callable[[torch.Tensor], torch.Tensor] = self.precision.inputs
        self.inference_mode = inference_mode
        self.clamp_parsing = clamp_parsing
        self._set_sizes()

    @classmethod
    def for_training(cls, model: nn.Module, *, device: str | torch.device,
                     autocast: contextlib.AbstractContextManager) -> Predictor:
        """A Predictor over a model that is being trained (validation): the model is used as the
        loop holds it (not moved or converted: its weights and layout are the loop's), each call
        puts it in eval mode and back in the mode it was in, the forward runs in the loop's
        `autocast` context under no_grad, inputs go in as given, and parsing maps are clamped."""
        self = cls.__new__(cls)
        self.precision = None
        self.device = device
        self.model = model
        self._autocast = lambda: autocast
        self._inputs = lambda x: x
        self.inference_mode = False
        self.clamp_parsing = True
        self._set_sizes()
        return self

    def _set_sizes(self) -> None:
        self.scale = upscale_of(getattr(self.model, "spec", None))
        self.lr_size = LR_SIZE
        self.hr_size = LR_SIZE * self.scale

    def prepare(self, model: nn.Module) -> nn.Module:
        """`model` on this device, in eval mode and this precision's memory format (in place, like Module.to)."""
        return self.precision.prepare(model.to(self.device).eval())

    @property
    def predicts_parsing(self) -> bool:
        """Whether the model gives parsing maps (Method 1 and 2 with their prior branch), as it declares."""
        return bool(getattr(self.model, "predicts_parsing", False))

    def __call__(self, lr: torch.Tensor) -> Prediction:
        """The SR (and parsing maps) of a float LR batch (B,3,h,w) in [0,1], on this device."""
        import torch

        grad = torch.inference_mode() if self.inference_mode else torch.no_grad()
        was_training = self.model.training
        self.model.eval()
        try:
            with grad, self._autocast():
                out = self.model(self._inputs(lr.to(self.device, torch.float32)))
        finally:
            self.model.train(was_training)
        # outputs are fp32 whatever ran inside (bf16 autocast gives bf16 activations)
        sr = out.sr.float().clamp(0, 1)
        parsing = None if out.parsing is None else out.parsing.float()
        if parsing is not None and self.clamp_parsing:
            parsing = parsing.clamp(0, 1)
        return Prediction(sr, parsing)

    def predict_batches(self, lr: torch.Tensor, batch_size: int) -> Iterator[tuple[int, Prediction]]:
        """`(start, prediction)` of `lr[start:start + batch_size]` for each batch of `lr`, in order."""
        if batch_size < 1:
            raise ValueError(f"predict_batches: batch_size must be >= 1, got {batch_size}")
        for start in range(0, lr.shape[0], batch_size):
            yield start, self(lr[start:start + batch_size])
