"""Bake a profile (an override set) into params.yaml, keeping its comments and every other key.

    python -m facesr.profile profiles/thesis.yaml --params params.yaml --dry-run
    python -m facesr.profile profiles/thesis.yaml         # then edit params.yaml and dvc repro

To *select* a profile, no baking is needed: `dvc exp run -S profile=mini-cpu` (or `profile:` in
params.yaml) makes every stage merge profiles/<name>.yaml over its section (facesr.config). Baking
is for starting a new params.yaml from a profile.

A profile holds only the keys that differ from the demo defaults, nested like params.yaml; mappings
merge key by key, anything else (lists, numbers, strings) replaces the value. Keys a profile names
must already exist in params.yaml, so a renamed parameter fails loudly instead of being ignored.
`git checkout params.yaml` returns to the demo profile.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Mapping
from pathlib import Path

from facesr.config import ParamsError, merge_overrides
from facesr.fileio import atomic_write_text


class ProfileError(ParamsError):
    """The profile or params file is unreadable, or names a key params.yaml lacks."""


def apply_profile(profile: str | Path, params: str | Path = "params.yaml", *, dry_run: bool = False) -> list[str]:
    """Merge `profile` into `params` (atomically); return the changed keys as 'key: old -> new'."""
    from ruamel.yaml import YAML  # DVC's own round-trip YAML: keeps comments and key order

    y = YAML()
    y.preserve_quotes, y.width = True, 4096
    profile, params = Path(profile), Path(params)
    for p in (profile, params):
        if not p.is_file():
            raise ProfileError(f"{p}: not found")
    try:
        overrides = y.load(profile.read_text())
        data = y.load(params.read_text())
    except Exception as exc:  # ruamel raises several YAMLError subclasses by cause
        raise ProfileError(f"{profile} or {params}: not valid YAML ({exc})") from exc
    if not isinstance(overrides, Mapping) or not isinstance(data, Mapping):
        raise ProfileError(f"{profile}: expected a mapping of params.yaml sections")
    try:
        changes = merge_overrides(data, overrides)
    except ParamsError as exc:
        raise ProfileError(f"{profile}: {exc}") from None
    if not dry_run:
        buf = io.StringIO()
        y.dump(data, buf)
        atomic_write_text(params, buf.getvalue())
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facesr.profile", description=__doc__.splitlines()[0])
    parser.add_argument("profile", help="profiles/<name>.yaml")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the changes, write nothing")
    args = parser.parse_args(argv)
    try:
        changes = apply_profile(args.profile, args.params, dry_run=args.dry_run)
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verb = "would change" if args.dry_run else "changed"
    print(f"{args.profile}: {verb} {len(changes)} key(s) of {args.params}", *(f"  {c}" for c in changes), sep="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
