"""The thesis' Table 4.1 and the literature rows of SPEC.md "Reference figures", for comparison."""

from __future__ import annotations

# model key -> (label, PSNR, SSIM, LPIPS); CelebAMask-HQ test faces, RGB protocol (SPEC.md).
THESIS_TABLE: dict[str, tuple[str, float, float, float]] = {
    "bicubic": ("Bicubic", 20.72, 0.5200, 0.5351),
    "srresnet": ("SRResNet", 24.47, 0.7201, 0.1854),
    "method1": ("Method 1", 24.66, 0.7230, 0.1900),
    "method2": ("Method 2 (GAN)", 23.38, 0.6689, 0.1018),
}

# label -> (PSNR, SSIM): CelebA-HQ, RGB with an 8-pixel crop; not the same protocol as the thesis.
LITERATURE: dict[str, tuple[float, float]] = {
    "DIC (OpenMMLab retrain)": (25.23, 0.7422),
    "DICGAN (OpenMMLab)": (23.62, 0.6721),
}

LABELS = {key: row[0] for key, row in THESIS_TABLE.items()}
