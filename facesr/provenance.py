"""What a result is a function of: the project code a module runs, the data it reads, the files it starts from.

`import_closure` finds every project module a module can import, transitively, including imports
inside functions and ``importlib.import_module("facesr...")`` calls, by reading source files (nothing
is imported). The training stages hash that closure into their run identity, and the test of
dvc.yaml checks each stage's `deps` against it, so "the code a result depends on" has one definition.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path

from facesr.fileio import sha256_file

PROJECT_PACKAGES = ("facesr", "flows", "stages")
# where the top-level packages live: the repo (or site-packages for an installed facesr)
ROOT = Path(__file__).resolve().parents[1]


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of module `name` under `root` (a package's __init__.py), or None."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _nodes(tree: ast.AST, top_level_only: bool) -> Iterable[ast.AST]:
    """Every node, or, with `top_level_only`, those that run on import (not inside a function)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not (top_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))):
                todo.append(child)


def _imported_names(tree: ast.AST, module: str, is_package: bool, top_level_only: bool) -> Iterable[str]:
    package = module if is_package else module.rpartition(".")[0]
    for node in _nodes(tree, top_level_only):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)  # kept only where it is a module
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              == "import_module" and node.args):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield arg.value
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                # import_module(f"facesr.<pkg>.{name}"): any module of that package
                yield str(arg.values[0].value).rstrip(".") + ".*"


def import_closure(modules: Iterable[str], root: Path = ROOT) -> dict[str, Path]:
    """Every project module (name -> file) that importing `modules` can run, parents included.

    A module that is imported gets its function bodies' imports followed too (any of its functions
    may be called); a package that only runs as the parent of one (``facesr`` for ``facesr.train``)
    runs its top-level code alone, so only that code's imports are followed.
    """
    found: dict[str, Path] = {}
    full: set[str] = set()
    todo = [(name, True) for name in modules]
    while todo:
        name, whole = todo.pop()
        if name.endswith(".*"):
            pkg = module_file(name[:-2], root)
            if pkg is not None and pkg.name == "__init__.py":
                todo += [(f"{name[:-2]}.{p.stem}", True) for p in pkg.parent.glob("*.py") if p.stem != "__init__"]
            continue
        if name in full or (name in found and not whole) or name.split(".")[0] not in PROJECT_PACKAGES:
            continue
        path = module_file(name, root)
        if path is None:
            continue  # `from pkg import function`: the name is not a module
        found[name] = path
        if whole:
            full.add(name)
        parts = name.split(".")
        todo += [(".".join(parts[:i]), False) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b
        tree = ast.parse(path.read_text(), filename=str(path))
        todo += [(n, True) for n in _imported_names(tree, name, path.name == "__init__.py", not whole)]
    return found


def code_digest(modules: Iterable[str], root: Path = ROOT) -> str:
    """sha256 over the sources of the import closure of `modules` (path and bytes of each file)."""
    h = hashlib.sha256()
    for name, path in sorted(import_closure(modules, root).items()):
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def tree_digest(folder: str | Path) -> str:
    """sha256 over every file under `folder` (relative path and content digest), e.g. prepared data."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\0".encode())
    return h.hexdigest()
