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


def test_heavy_tests_are_marked_slow_and_the_quick_mode_leaves_them_out():
    import subprocess
    import sys

    def collected(*args: str) -> list[str]:
        proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                              capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
        return [line for line in proc.stdout.splitlines() if "::" in line]

    heavy = ["tests/test_e2e.py", "tests/test_bundle_roundtrip.py::test_bundle_round_trip_runs_after_import",
             "tests/test_provision.py::test_demo_ends_with_commands_that_work"]  # fmt: skip
    assert len(collected(*heavy)) == 13
    assert collected("-m", "not slow", *heavy) == []
    script = (REPO / "scripts" / "test.sh").read_text()
    assert '--quick' in script and 'python -m pytest -q -m "not slow" "$@"' in script
    assert "scripts/test.sh --quick" in (REPO / "README.md").read_text()
