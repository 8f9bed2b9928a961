"""Which torch device to run on, and in which precision: the rules training, evaluation and
inference share."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing facesr.device stays cheap: torch is imported where it is used
    import torch


class DeviceError(ValueError):
    """A device that cannot be used here (CUDA asked for on a machine without a CUDA GPU, or an
    unknown name); the message names the setting it came from."""


def resolve_device(want: str | None = "auto", *, setting: str = "device") -> str:
    """The torch device string for `want`.

    "auto" (or None) is "cuda" when a CUDA GPU is present, else "cpu"; "cuda" or "cuda:N" on a
    machine without one is a DeviceError naming `setting` (e.g. "loop.device"), not a silent CPU
    run; any other name must be one torch knows ("cpu", "mps", ...).
    """
    import torch

    if want is None or want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(want).type
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"{setting}: {want!r} is not a torch device (auto, cpu, cuda, cuda:N)") from exc
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"{setting}: {want!r} asked for, but no CUDA GPU is available here")
    return str(torch.device(want))


# ------------------------------------------------------------------------------------ precision

PRECISIONS = ("auto", "fp32", "bf16")
CHANNELS_LAST = ("auto", True, False)


class PrecisionError(ValueError):
    """A `precision` or `channels_last` setting that is not one of the allowed values; the message
    names the setting it came from."""


class PrecisionWarning(UserWarning):
    """bf16 asked for explicitly on a device that has no fast bf16 path (it runs, but slowly)."""


@dataclass(frozen=True)
class Precision:
    """How a model runs on a device: the autocast dtype (None: plain fp32) and the memory format.

    Only the compute of a forward pass changes: parameters, gradients, optimizer state, losses,
    metrics and checkpoints stay fp32. `reason` says why this was chosen, for logs and reports.
    """

    device_type: str
    dtype: torch.dtype | None
    channels_last: bool
    reason: str

    @property
    def name(self) -> str:
        return "fp32" if self.dtype is None else "bf16"

    def autocast(self) -> contextlib.AbstractContextManager:
        """A context for the forward pass: bf16 autocast, or a no-op for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` in this memory format (in place, like Module.to); its dtype stays fp32."""
        if self.channels_last:
            import torch

            module.to(memory_format=torch.channels_last)
        return module

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """An image batch (B,C,H,W) in this memory format (the same tensor when nothing changes)."""
        if self.channels_last and x.dim() == 4:
            import torch

            return x.contiguous(memory_format=torch.channels_last)
        return x

    def as_dict(self) -> dict[str, str | bool]:
        return {"precision": self.name, "channels_last": self.channels_last, "precision_reason": self.reason}


def cpu_flags() -> dict[str, str | bool | int]:
    """What torch reports about this CPU's vector units (the inputs of the `auto` choice on CPU)."""
    import torch

    def probe(name: str) -> bool:
        fn = getattr(torch.cpu, name, None)  # private helpers: absent in some torch versions
        return bool(fn()) if callable(fn) else False

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "avx512_bf16": probe("_is_avx512_bf16_supported"), "amx_tile": probe("_is_amx_tile_supported"),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def fast_bf16(device_type: str) -> bool:
    """Whether `device_type` runs bf16 convolutions natively: a CUDA GPU with bf16 units (Ampere and
    later), a CPU with AVX512_BF16 or AMX. Elsewhere bf16 is emulated and slower than fp32."""
    import torch

    if device_type == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch without the keyword
            return bool(torch.cuda.is_bf16_supported())
    if device_type == "cpu":
        flags = cpu_flags()
        return bool(flags["avx512_bf16"] or flags["amx_tile"])
    return False


def resolve_precision(device: str | torch.device, precision: str = "auto", channels_last: str | bool = "auto",
                      *, fast: bool | None = None, setting: str = "precision") -> Precision:
    """The one rule for `precision: auto | fp32 | bf16` and `channels_last: auto | true | false`.

    `auto` is bf16 autocast + channels_last where the device does bf16 fast (`fast`, detected with
    `fast_bf16` when None), fp32 in the contiguous format elsewhere. An explicit `bf16` is honoured
    everywhere, with a PrecisionWarning where it is slow; explicit channels_last is honoured as is.
    With `fast` given, the result depends on the arguments only.
    """
    if precision not in PRECISIONS:
        raise PrecisionError(f"{setting}: precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if not (channels_last == "auto" or isinstance(channels_last, bool)):
        raise PrecisionError(f"{setting}: channels_last {channels_last!r} is not one of auto, true, false")
    kind = str(device).split(":", 1)[0]
    if fast is None:
        fast = fast_bf16(kind)
    where = {"cuda": "a CUDA GPU", "cpu": "a CPU"}.get(kind, kind)
    speed = "with fast bf16" if fast else ("without AVX512_BF16/AMX" if kind == "cpu" else "without fast bf16")
    bf16 = precision == "bf16" or (precision == "auto" and fast)
    layout = fast if channels_last == "auto" else channels_last
    reason = (f"precision {precision}, channels_last {str(channels_last).lower()} on {where} {speed}: "
              f"{'bf16 autocast' if bf16 else 'fp32'}{', channels_last' if layout else ''}")
    if bf16 and not fast:
        warnings.warn(f"{setting}: bf16 asked for on {where} {speed}: it runs, emulated and slower than fp32 "
                      "(precision: auto picks fp32 here)", PrecisionWarning, stacklevel=2)
    import torch

    return Precision(device_type=kind, dtype=torch.bfloat16 if bf16 else None, channels_last=layout, reason=reason)
