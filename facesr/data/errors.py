"""Bad-input policy shared by the data stages.

Every stage collects *all* bad files first (path + reason) and then applies the params' `on_error`
policy once: `fail` raises one DataError listing them all, `skip` writes them to a JSON report inside
the (still temporary) output and carries on with the good ones. Collecting first means a user fixing
a broken download sees every problem in one run, not one per run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

ON_ERROR = ("fail", "skip")


class DataError(ValueError):
    """Input data is unusable; the message names every offending file and why."""


@dataclass(frozen=True)
class BadFile:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def check_policy(on_error: str, where: str = "params") -> str:
    if on_error not in ON_ERROR:
        raise DataError(f"{where}: on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    return on_error


def apply_policy(bad: list[BadFile], on_error: str, report: Path | None, *, stage: str) -> None:
    """Raise on any bad file under `fail`; under `skip` write `report` (always, even empty)."""
    check_policy(on_error)
    bad = sorted(set(bad), key=lambda b: (b.path, b.reason))
    if bad and on_error == "fail":
        lines = "\n".join(f"  - {b}" for b in bad)
        raise DataError(
            f"{stage}: {len(bad)} bad input file(s) (set on_error: skip to leave them out):\n{lines}"
        )
    if report is not None and on_error == "skip":
        report.write_text(
            json.dumps({"stage": stage, "skipped": [{"path": b.path, "reason": b.reason} for b in bad]},
                       indent=1) + "\n"
        )
