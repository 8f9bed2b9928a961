"""Reading `params.yaml`: each stage reads only its own section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ParamsError(ValueError):
    """params.yaml is missing, unreadable, or lacks a section or key a stage needs."""


def load_params(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of stage sections at the top level")
    return data


def load_section(path: str | Path, section: str) -> dict[str, Any]:
    """The `section` mapping of the params file at `path`, with a clear error if it is absent."""
    data = load_params(path)
    if section not in data or not isinstance(data[section], dict):
        raise ParamsError(f"{path}: no '{section}:' section (stages read their own section only)")
    return data[section]


def require(section: dict[str, Any], *keys: str, where: str = "params") -> None:
    """Fail with every missing key named at once, instead of a KeyError deep inside a stage."""
    missing = [k for k in keys if k not in section]
    if missing:
        raise ParamsError(f"{where}: missing key(s) {', '.join(missing)}")
