"""The README and docs/ name only things that exist: its two commands first, links, make targets,
modules and `facesr` command lines (parsed by the real parser, nothing run)."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from facesr.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO)) for p in paths]


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):(?!=)", (REPO / "Makefile").read_text(), re.M))


def code_lines(text: str) -> list[str]:
    """Lines of fenced (```) and indented (4 spaces) code blocks, and inline `code` spans."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    ") and not line.lstrip().startswith(("-", "|", "*")):
            lines.append(line.strip())
        else:
            lines += re.findall(r"`([^`]+)`", line)
    return lines


def fenced_lines(text: str) -> list[str]:
    return [line.strip() for block in re.findall(r"^```\w*\n(.*?)^```", text, re.S | re.M)
            for line in block.splitlines()]


def test_readme_opens_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    first_block = re.search(r"```\w*\n(.*?)```", text, re.S)
    assert first_block, "README.md has no code block"
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]
    assert {"demo", "test"} <= make_targets()
    assert re.search(r"^make test$", (REPO / ".ci" / "run").read_text(), re.M), "CI no longer runs `make test`"


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_relative_links_resolve(doc):
    links = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", doc.read_text())
    broken = [t for t in links if not re.match(r"[a-z]+:", t) and not (doc.parent / t).exists()]
    assert not broken, f"{doc.relative_to(REPO)}: links to missing files: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_make_targets_exist(doc):
    named = {m for line in code_lines(doc.read_text()) for m in re.findall(r"(?:^|[\s:(])make ([a-z][\w-]*)", line)}
    assert named <= make_targets(), f"{doc.relative_to(REPO)}: no such make target: {sorted(named - make_targets())}"


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_python_modules_exist(doc):
    named = {m.rstrip(".") for line in code_lines(doc.read_text()) for m in re.findall(r"python -m ([\w.]+)", line)}
    missing = [m for m in sorted(named) if importlib.util.find_spec(m) is None]
    assert not missing, f"{doc.relative_to(REPO)}: no such module: {missing}"


def test_readme_facesr_commands_parse():
    parser = build_parser()
    commands = [line.split(" #")[0] for line in fenced_lines((REPO / "README.md").read_text())
                if re.match(r"(\.venv/bin/)?facesr \w", line)]
    assert len(commands) >= 4  # upscale (crops, photos, registry), score
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command in commands:
        argv = shlex.split(command)[1:]
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"README.md: `{command}` is not a valid facesr command line")
        # argparse takes a prefix of a flag too; the README spells each one out
        flags = {o for a in subparsers[argv[0]]._actions for o in a.option_strings}
        assert not [t for t in argv if t.startswith("-") and t not in flags], f"README.md: `{command}`: unknown flag"
