"""The package's shape, measured from the code's own imports (issue 21): no cycles between modules or between
subpackages, at most MAX_LAYERS import layers (scripts/ and benchmarks/ included), no module in zoo/ over 400 lines, only the
package's face and a few cross-cutting modules directly in zoo/, and no private name imported across modules.

Imports are read with :mod:`ast`, function-level (lazy) imports included: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Issue 21 asks for at most 12, and the tree stands on 12 (e.g. __main__ → cli → cmd_eval → engines.ray_eval →
# engines.shipping → runners.runtime → runners.choice → registry.catalog → registry.entries → registry.model_facts →
# registry.spec → postprocess). This is a ratchet: it may go down, never up.
MAX_LAYERS = 12
MAX_LINES = 400
# the package's face (__init__, __main__) and the cross-cutting modules every layer may use
TOP_LEVEL = {"__init__", "__main__", "errors", "config", "util", "images", "synthetic", "postprocess", "progress"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "plugins":
        parts = parts[1:]
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


@cache
def sources() -> dict[str, Path]:
    files = [*ROOT.glob("zoo/**/*.py"), *ROOT.glob("plugins/*/**/*.py"), *ROOT.glob("scripts/*.py"),
             *ROOT.glob("benchmarks/*.py")]  # fmt: skip
    return {module_name(p): p for p in files}


def runtime_nodes(tree: ast.AST):
    """Every node, except what stands under ``if TYPE_CHECKING:`` (annotations only: never imported at run time)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imported(path: Path, name: str) -> set[str]:
    """Modules of this tree that ``path`` (module ``name``) imports, resolved to the longest known module."""
    known = sources()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import module` depends on the module; `from pkg import name` on pkg itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


@cache
def graph() -> dict[str, set[str]]:
    return {name: imported(path, name) for name, path in sources().items()}


def layers(g: dict[str, set[str]]) -> dict[str, int]:
    depth: dict[str, int] = {}

    def visit(n: str, stack: tuple[str, ...]) -> int:
        if n in depth:
            return depth[n]
        if n in stack:
            raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(n):] + (n,))}")
        depth[n] = 1 + max((visit(m, (*stack, n)) for m in g[n]), default=0)
        return depth[n]

    for n in g:
        visit(n, ())
    return depth


def test_no_module_cycles_and_at_most_twelve_layers():
    depth = layers(graph())
    deepest = max(depth, key=depth.get)
    assert depth[deepest] <= MAX_LAYERS, f"{deepest} stands on layer {depth[deepest]}"


def test_no_cycles_between_subpackages():
    def pkg(m: str) -> str:
        parts = m.split(".")
        return ".".join(parts[:2]) if parts[0] == "zoo" and len(parts) > 2 else m

    g: dict[str, set[str]] = {}
    for m, deps in graph().items():
        g.setdefault(pkg(m), set()).update(pkg(d) for d in deps if pkg(d) != pkg(m))
    for deps in list(g.values()):
        for d in deps:
            g.setdefault(d, set())
    layers(g)  # raises on a cycle


def test_package_face_is_not_imported_from_inside():
    users = sorted(m for m, deps in graph().items() if "zoo" in deps and m.startswith("zoo."))
    assert users == [], f"modules import the package face (zoo/__init__.py), which runs back up: {users}"


@pytest.mark.parametrize("name", sorted(n for n in sources() if n.startswith("zoo")))
def test_module_size(name):
    lines = len(sources()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{sources()[name]} has {lines} lines"


def test_only_cross_cutting_modules_directly_in_zoo():
    top = {p.stem for p in (ROOT / "zoo").glob("*.py")}
    assert top <= TOP_LEVEL, f"modules directly in zoo/ beyond the face and cross-cutting ones: {top - TOP_LEVEL}"


def test_no_private_name_imported_across_modules():
    offenders = []
    for name, path in sources().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zoo"):
                offenders += [f"{name}: from {node.module} import {a.name}" for a in node.names
                              if a.name.startswith("_") and a.name != "__version__"]  # fmt: skip
    assert offenders == []
