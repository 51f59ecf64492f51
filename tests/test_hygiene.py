"""Small things a newcomer trips over: the build metadata and the demo script's own code."""

from __future__ import annotations

import ast
import tomllib
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_license_is_an_spdx_string():
    """`license = {text = ...}` makes setuptools warn on every build (PEP 639 wants an SPDX expression)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"


def test_demo_defines_each_name_once_and_uses_every_function():
    tree = ast.parse((REPO / "scripts" / "demo.py").read_text())
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    assert [name for name, count in Counter(defined).items() if count > 1] == []
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert [name for name in defined if name not in used and name != "main"] == []
