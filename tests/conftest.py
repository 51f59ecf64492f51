"""Shared fixtures: every test gets its own empty ZOO_HOME and a clean zoo environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).with_name("reference")
# scripts/test.sh unpacks PaddleSeg (not a zoo dependency) for the parity tests; appended, so nothing is shadowed
for _path in os.environ.get("ZOO_TEST_PADDLESEG_PATH", "").split(os.pathsep):
    if _path and _path not in sys.path:
        sys.path.append(_path)

ZOO_VARS = ("ZOO_HOME", "ZOO_REGISTRY", "ZOO_PLUGINS", "ZOO_OFFLINE", "ZOO_MIRROR", "ZOO_REQUIRE_HASH", "ZOO_DEBUG",
            "ZOO_TIMEOUT", "ZOO_RETRIES", "ZOO_BACKOFF", "ZOO_DEADLINE")


@pytest.fixture(autouse=True)
def zoo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ZOO_HOME per test; no zoo variable leaks in from the caller's environment."""
    for var in ZOO_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "zoo-home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    return home


def run_zoo(*args: str, env: dict[str, str] | None = None, check: bool = False, timeout: float = 600,
            **kwargs) -> subprocess.CompletedProcess:
    """Run the real `zoo` CLI in a subprocess (``python -m zoo``) with the test's environment."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, **kwargs)  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"zoo {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


from tests.models import model_store, models  # noqa: E402,F401  (fixtures for every test module)
