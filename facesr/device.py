"""Which torch device to run on: the one rule training, evaluation and inference share."""

from __future__ import annotations


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
