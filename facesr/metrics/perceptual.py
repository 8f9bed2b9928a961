"""LPIPS v0.1 (AlexNet by default, VGG16 selectable) with the real ImageNet trunk of facesr.weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

from facesr.metrics.quality import MetricsError, check_pair, quantize

# torch loads inside the methods, so that importing facesr.metrics (which the report and `facesr --help`
# do) stays torch-free.
if TYPE_CHECKING:
    import torch


class LPIPS:
    """Callable ``(sr, hr) -> (B,)`` LPIPS distances; inputs float [0, 1] (B, 3, H, W).

    The images are quantised to uint8 first (like every metric here) and mapped to [-1, 1] as lpips'
    own ``im2tensor`` does. Computed under no_grad in chunks of ``batch_size``.

    Args:
        net: ``alex`` (the thesis' metric) or ``vgg``.
        device: torch device for the network.
        batch_size: images per forward pass (bounds memory).
    """

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu", batch_size: int = 32):
        import torch

        from facesr.weights import lpips_model

        if batch_size < 1:
            raise MetricsError(f"LPIPS batch_size must be >= 1, got {batch_size}")
        self.net = net
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = lpips_model(net, device=str(self.device))

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.no_grad():
            check_pair(sr, hr, "lpips")
            out = []
            for start in range(0, sr.shape[0], self.batch_size):
                a = quantize(sr[start : start + self.batch_size]).float().to(self.device) / 127.5 - 1.0
                b = quantize(hr[start : start + self.batch_size]).float().to(self.device) / 127.5 - 1.0
                out.append(self.model(a, b).flatten().to(torch.float64).cpu())
            return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)

    def __repr__(self) -> str:
        return f"LPIPS(net={self.net!r}, device={str(self.device)!r})"
