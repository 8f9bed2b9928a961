"""The demo profile's settings of the data functions, read from params.yaml (the library has no defaults
that could drift from it): tests call ``download(out, **demo_download(source="folder", ...))``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facesr.config import load_section

REPO = Path(__file__).resolve().parents[1]


def _demo(section: str, over: dict[str, Any]) -> dict[str, Any]:
    return {**load_section(REPO / "params.yaml", section, profile="demo"), **over}


def demo_download(**over: Any) -> dict[str, Any]:
    return _demo("download", over)


def demo_merge(**over: Any) -> dict[str, Any]:
    """merge_masks' settings but `parts`, which every test names itself."""
    return {k: v for k, v in _demo("merge_masks", over).items() if k != "parts"}


def demo_downscale(**over: Any) -> dict[str, Any]:
    return _demo("downscale", over)
