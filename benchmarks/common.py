"""Helpers shared by the benchmark scripts: progress on stderr, child processes with their peak RSS, statistics."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHILD = HERE / "child.py"
_START = time.monotonic()


def log(message: str) -> None:
    """Progress for the person running the benchmark (stderr; stdout is not used)."""
    print(f"[{time.monotonic() - _START:6.0f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Finished:
    """A child process that ran to the end."""

    returncode: int
    seconds: float  # wall time from spawn to reap
    peak_rss_mb: float  # the child's own ru_maxrss (not its children's)
    stdout: str
    stderr: str


def run(cmd: list[str], *, env: dict[str, str] | None = None, check: bool = True, timeout: float = 1800) -> Finished:
    """Run ``cmd`` and reap it with ``wait4``, which gives that one process's peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        done = Finished(proc.returncode, seconds, usage.ru_maxrss / 1024, out.read().decode(errors="replace"),
                        err.read().decode(errors="replace"))  # fmt: skip
    if check and done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{tail}")
    return done


def child(mode: str, *args: Any, env: dict[str, str] | None = None, timeout: float = 1800) -> dict[str, Any]:
    """Run ``benchmarks/child.py MODE ARGS... RESULT`` and return the JSON it wrote (plus its peak RSS)."""
    with tempfile.TemporaryDirectory(prefix="zoo-benchmarks-") as tmp:
        result = Path(tmp) / "result.json"
        done = run([sys.executable, str(CHILD), mode, *map(str, args), str(result)], env=env, timeout=timeout)
        doc = json.loads(result.read_text(encoding="utf-8"))
    doc["child_peak_rss_mb"] = round(done.peak_rss_mb, 1)
    doc["child_seconds"] = round(done.seconds, 2)
    return doc


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def verdict(ok: bool) -> str:
    return "pass" if ok else "**miss**"
