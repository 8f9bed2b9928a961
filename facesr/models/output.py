"""What every generator returns: `SROutput`, the SR image and, when the model makes them, its
intermediate outputs, by name.

A generator class also declares `predicts_parsing` (a class attribute, or a property where a
constructor argument decides, as Method 1's `prior`), so a caller knows whether `parsing` will be
set without running the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SROutput:
    """A generator's output for an LR batch (B, 3, h, w); H, W = upscale * h, upscale * w.

    Attributes:
        sr: The final SR image (B, 3, H, W), not clamped (training sees the raw values).
        coarse: Method 1's coarse SR image (B, 3, H, W), the SR branch's output before the fusing
            module; None for models without one.
        parsing: Predicted parsing maps (B, P, H, W) in [0, 1]; None for models without a prior branch.
    """

    sr: torch.Tensor
    coarse: torch.Tensor | None = None
    parsing: torch.Tensor | None = None
