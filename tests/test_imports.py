"""The package's modules import each other without circles, and only the entry modules (the
Hydra apps and ``sed-tools``) are command lines: no other module imports ``argparse``, has an
``if __name__ == "__main__":`` block or imports an entry module.

Every ``import`` of a ``sed_lightning`` module counts: at module level, inside a function, or
under ``if TYPE_CHECKING:``; relative imports resolved. ``from sed_lightning.x import y`` is
an edge to ``sed_lightning.x`` and, if ``sed_lightning.x.y`` is a module, to that module too.
Importing ``sed_lightning.a.b`` runs ``sed_lightning.a``'s ``__init__`` first, so it is an
edge to the package ``sed_lightning.a`` as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "sed_lightning"


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _parents(name: str, modules: dict[str, Path], importer: str) -> set[str]:
    """The packages above ``name`` (their ``__init__`` runs before it), leaving out the
    top-level package and those that hold ``importer`` (already being imported)."""
    parts = name.split(".")
    out = set()
    for i in range(2, len(parts)):
        package = ".".join(parts[:i])
        if package in modules and not importer.startswith(package + "."):
            out.add(package)
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that module ``name`` imports, anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges: set[str] = set()

    def add(target: str) -> None:
        if target in modules:
            edges.add(target)
            edges.update(_parents(target, modules, name))

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            submodules = [f"{source}.{a.name}" for a in node.names]
            for submodule in submodules:
                add(submodule)
            # the package's own __init__ (names defined there), unless only its submodules
            # are taken from a package this module is part of (already being imported)
            if not (name.startswith(source + ".") and all(m in modules for m in submodules)):
                add(source)
    edges.discard(name)
    edges.discard(PACKAGE)
    return edges


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def all_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules that import each other."""
    cycles = []
    remaining = {k: set(v) for k, v in graph.items()}
    while (cycle := find_cycle(remaining)) is not None:
        cycles.append(cycle)
        remaining[cycle[0]].discard(cycle[1])  # report the next one
    return cycles


def test_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .leaf import x\n")
    (pkg / "sub" / "leaf.py").write_text(
        "def f():\n    from ..top import y\n    from . import other\n"
    )
    (pkg / "sub" / "other.py").write_text("import sed_lightning.top\n")
    (pkg / "top.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sed_lightning.sub import other\n"
    )
    modules = {}
    for path in sorted(pkg.rglob("*.py")):
        parts = list(path.relative_to(tmp_path).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    graph = {n: imports_of(n, p, modules) for n, p in modules.items()}
    assert graph[f"{PACKAGE}.sub"] == {f"{PACKAGE}.sub.leaf"}
    assert graph[f"{PACKAGE}.sub.leaf"] == {f"{PACKAGE}.top", f"{PACKAGE}.sub.other"}
    assert graph[f"{PACKAGE}.top"] == {f"{PACKAGE}.sub", f"{PACKAGE}.sub.other"}
    assert graph[f"{PACKAGE}.sub.other"] == {f"{PACKAGE}.top"}
    sub, leaf, other, top = (f"{PACKAGE}.{m}" for m in ("sub", "sub.leaf", "sub.other", "top"))
    assert find_cycle(graph) == [sub, leaf, other, top, sub]
    del graph[top]
    assert find_cycle(graph) is None


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 50, "the package's modules were not found"
    cycles = all_cycles(graph)
    if cycles:
        pytest.fail(
            "import cycle(s) in the package:\n"
            + "\n".join("  " + " -> ".join(cycle) for cycle in cycles)
        )


# ---------------------------------------------------------------- command lines
#: The entry modules: the Hydra apps and ``sed-tools``. Only they parse a command line.
ENTRY_MODULES = {f"{PACKAGE}.{name}" for name in ("train", "predict", "evaluate", "tools")}


def is_entry(name: str) -> bool:
    return name in ENTRY_MODULES


def _is_main_guard(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, *test.comparators]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    mains = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(mains) == 1


def command_line_code(source: str) -> list[str]:
    """What makes a module a command line: ``argparse`` imports and a ``__main__`` block
    (with their line numbers)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            if any(alias.name.split(".")[0] == "argparse" for alias in node.names):
                found.append((node.lineno, "imports argparse"))
        elif isinstance(node, ast.ImportFrom):
            if not node.level and (node.module or "").split(".")[0] == "argparse":
                found.append((node.lineno, "imports argparse"))
        elif isinstance(node, ast.If) and _is_main_guard(node.test):
            found.append((node.lineno, 'if __name__ == "__main__"'))
    return [f"line {line}: {what}" for line, what in sorted(found)]


def test_command_line_code_is_found() -> None:
    source = (
        "import os, argparse as ap\n"
        "def f():\n    from argparse import ArgumentParser\n"
        'if "__main__" == __name__:\n    f()\n'
        "if __name__ == 'other':\n    pass\n"
    )
    assert command_line_code(source) == [
        "line 1: imports argparse",
        "line 3: imports argparse",
        'line 4: if __name__ == "__main__"',
    ]
    assert command_line_code("import argparsex\nname = __name__\n") == []


def test_only_entry_modules_are_command_lines() -> None:
    """No library module parses arguments or runs as a script: its command line, if it has
    one, is a subcommand of ``sed-tools`` (:mod:`sed_lightning.tools`) or a Hydra app."""
    modules = module_files()
    assert ENTRY_MODULES <= set(modules)
    offenders = [
        f"{name}: {what}"
        for name, path in modules.items()
        if not is_entry(name)
        for what in command_line_code(path.read_text())
    ]
    assert not offenders, "command-line code outside the entry modules:\n" + "\n".join(offenders)


def test_no_library_module_imports_an_entry_module() -> None:
    graph = import_graph()
    offenders = [
        f"{name} imports {target}"
        for name, targets in sorted(graph.items())
        if not is_entry(name)
        for target in sorted(targets)
        if is_entry(target)
    ]
    assert not offenders, "library modules importing entry modules:\n" + "\n".join(offenders)


#: The most lines a module of the package may have (one idea a module; a longer one is
#: split by concern, as data/synthesis.py was).
MAX_LINES = 599


def test_no_module_is_over_the_line_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in module_files().items()}
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines (split them by concern): {over}"
    assert max(sizes.values()) > 300  # it reads real modules
