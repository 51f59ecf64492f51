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
            "ZOO_TIMEOUT", "ZOO_RETRIES", "ZOO_BACKOFF", "ZOO_DEADLINE", "ZOO_MAX_UNPACKED", "ZOO_MAX_RATIO", "ZOO_BACKENDS", "ZOO_MAX_DOWNLOAD",
            "ZOO_PROGRESS")


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


# ---- the PaddleSeg oracle may not skip silently ----------------------------------------------------------------
# The `paddleseg` parity tests are the proof that zoo's networks are PaddleSeg's; a run where they skipped fails,
# unless ZOO_TEST_NO_PADDLESEG=1 says the oracle is knowingly unavailable (README, "Quick start").
_skipped_parity: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "paddleseg" in report.keywords:
        _skipped_parity.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_parity and os.environ.get("ZOO_TEST_NO_PADDLESEG") != "1" and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int) -> None:
    if _skipped_parity and os.environ.get("ZOO_TEST_NO_PADDLESEG") != "1":
        terminalreporter.write_line(
            f"FAILED: {len(_skipped_parity)} 'paddleseg' parity test(s) skipped (the PaddleSeg oracle is not "
            "importable; run 'bash scripts/test.sh', or set ZOO_TEST_NO_PADDLESEG=1 to accept running without it)",
            red=True,
        )
