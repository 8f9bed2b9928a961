"""Validation during training, the sample grids and the per-step curves."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch
from torch import nn

from facesr.fileio import atomic_open, atomic_write_text


class ValidationDataError(ValueError):
    """The val split cannot be scored (it is empty)."""


class Validator:
    """PSNR/SSIM (+ LPIPS when its weights are present) of a model on the first `faces` val faces."""

    def __init__(self, data_root: Path, *, faces: int, sample_faces: int, use_lpips: bool,
                 device: torch.device, batch_size: int):
        from facesr.data import FaceSRDataset

        dataset = FaceSRDataset(data_root, "val", hflip=False)
        self.parts = list(dataset.parts)
        n = min(faces, len(dataset))
        if n == 0:
            raise ValidationDataError(f"{data_root}: the val split is empty; validation needs faces")
        items = [dataset[i] for i in range(n)]
        self.batch = {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in ("lr", "hr", "parsing")}
        self.sample_faces = min(sample_faces, n)
        self.device, self.batch_size = device, batch_size
        self.lpips = None
        self.lpips_error = None
        if use_lpips:
            from facesr.metrics import LPIPS

            try:
                self.lpips = LPIPS("alex", device=str(device))
            except Exception as exc:  # MissingWeightsError: validation goes on with PSNR/SSIM
                self.lpips_error = str(exc)

    @torch.no_grad()
    def __call__(self, model: nn.Module, autocast) -> tuple[dict[str, float], torch.Tensor]:
        """`({"val_<metric>": mean}, the first sample faces' SR)` of `model` (the loop's, left in the
        mode it was in) run in the loop's `autocast` context."""
        from facesr.metrics import compute_metrics
        from facesr.metrics.means import MeanAccumulator
        from facesr.models.predictor import Predictor

        predictor = Predictor.for_training(model, device=self.device, autocast=autocast)
        # region PSNRs are NaN for faces without that region: average over the faces that have it
        means = MeanAccumulator()
        samples = None
        for start, (sr, pred_parsing) in predictor.predict_batches(self.batch["lr"], self.batch_size):
            part = {k: self.batch[k][start:start + self.batch_size].to(self.device) for k in ("hr", "parsing")}
            scores = compute_metrics(sr, part["hr"], lpips=self.lpips, parsing=part["parsing"],
                                     pred_parsing=pred_parsing, parts=self.parts)
            means.add(scores)
            if samples is None:
                samples = sr[: self.sample_faces].cpu()
        return {f"val_{k}": v for k, v in means.means().items() if v is not None}, samples

    def save_grid(self, sr: torch.Tensor, path: Path) -> Path:
        """LR (nearest, enlarged to the SR's size) | SR | HR, one face per row."""
        import torch.nn.functional as F
        from torchvision.utils import save_image

        k = sr.shape[0]
        # the model's upscale, as the sizes show it (x8 for the thesis' 16 -> 128)
        scale = sr.shape[-1] // self.batch["lr"].shape[-1]
        lr_up = F.interpolate(self.batch["lr"][:k], scale_factor=scale, mode="nearest")
        rows = torch.stack([lr_up, sr, self.batch["hr"][:k]], dim=1).flatten(0, 1)
        with atomic_open(path, "wb") as fh:
            save_image(rows, fh, format="png", nrow=3, padding=2)
        return path


def write_curves(path: Path, history: list[dict[str, float]]) -> Path:
    """Per-step CSV of every logged value (train and val rows share the step column)."""
    keys: list[str] = ["step"]
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return atomic_write_text(path, buf.getvalue())


def last_val(history: list[dict[str, float]]) -> dict[str, float]:
    for row in reversed(history):
        if any(k.startswith("val_") for k in row):
            return {k: v for k, v in row.items() if k != "step"}
    return {}
