"""facesr.inference.photos and facesr.inference.upscaler do not import each other (read from their source)."""

from __future__ import annotations

import ast
from pathlib import Path

import facesr.inference

INFERENCE = Path(facesr.inference.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement of `path` names, wherever it stands (function bodies and
    TYPE_CHECKING blocks too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_photos_and_upscaler_do_not_import_each_other():
    photos = imported_modules(INFERENCE / "photos.py")
    upscaler = imported_modules(INFERENCE / "upscaler.py")
    assert "facesr.inference.upscaler" not in photos
    assert "facesr.inference.photos" not in upscaler
    # the check reads real imports: both use the LR helper module
    assert "facesr.inference.lowres" in photos and "facesr.inference.lowres" in upscaler
