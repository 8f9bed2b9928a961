"""downscale()'s settings as params.yaml's demo `downscale:` section has them (the library has no defaults)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facesr.config import load_section

REPO = Path(__file__).resolve().parents[2]


def demo_downscale(**over: Any) -> dict[str, Any]:
    return {**load_section(REPO / "params.yaml", "downscale", profile="demo"), **over}
