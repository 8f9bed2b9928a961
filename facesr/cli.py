"""The `facesr` command line.

Each subcommand lives next to the code it drives and exposes ``add_parser(subparsers)``, which
registers its parser and sets ``func`` to a callable taking the parsed ``argparse.Namespace`` and
returning an exit code. The list below is the one place subcommands are wired in.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that register a subcommand. They import torch, ray and mlflow inside their functions, not at
# module level, so that `facesr --help` answers at once.
SUBCOMMANDS: list[str] = [
    "facesr.weights",
    "facesr.metrics.score",
    "facesr.inference",
    "facesr.export",
    "facesr.inference.serve",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facesr",
        description="8x face super-resolution: fetch backbone weights, score SR outputs, upscale faces.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in SUBCOMMANDS:
        module = importlib.import_module(module_name)
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
