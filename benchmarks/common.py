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
    peak_rss_mb: float  # the command's own peak RSS (run with rss=True), else nan
    stdout: str
    stderr: str


# Started from a process this small, a child's ru_maxrss is its own: at exec, Linux carries the forking process's
# peak RSS into the child's ru_maxrss, so a child of this (large) benchmark process would report at least its size.
_LAUNCHER = (
    "import json, os, shutil, sys\n"
    "pid = os.posix_spawn(shutil.which(sys.argv[2]) or sys.argv[2], sys.argv[2:], os.environ)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss]))\n"
)


def run(cmd: list[str], *, env: dict[str, str] | None = None, check: bool = True, rss: bool = False,
        timeout: float = 1800) -> Finished:  # fmt: skip
    """Run ``cmd``; with ``rss``, through a small launcher process that reports the command's own peak RSS.

    Wall time includes the launcher's start-up (~20 ms) when ``rss`` is set, so start-up timings use ``rss=False``.
    """
    with tempfile.TemporaryDirectory(prefix="zoo-benchmarks-") as tmp:
        report = Path(tmp) / "rusage.json"
        full = [sys.executable, "-S", "-c", _LAUNCHER, str(report), *cmd] if rss else cmd
        with open(Path(tmp) / "out", "w+b") as out, open(Path(tmp) / "err", "w+b") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(full, stdout=out, stderr=err, env={**os.environ, **(env or {})})
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            seconds = time.perf_counter() - started
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        code, peak = proc.returncode, float("nan")
        if rss and report.is_file():
            code, maxrss_kib = json.loads(report.read_text())
            peak = maxrss_kib / 1024
    done = Finished(code, seconds, peak, stdout, stderr)
    if check and done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{tail}")
    return done


def child(mode: str, *args: Any, env: dict[str, str] | None = None, timeout: float = 1800) -> dict[str, Any]:
    """Run ``benchmarks/child.py MODE ARGS... RESULT`` and return the JSON it wrote (plus its wall time)."""
    with tempfile.TemporaryDirectory(prefix="zoo-benchmarks-") as tmp:
        result = Path(tmp) / "result.json"
        done = run([sys.executable, str(CHILD), mode, *map(str, args), str(result)], env=env, timeout=timeout)
        doc = json.loads(result.read_text(encoding="utf-8"))
    doc["child_seconds"] = round(done.seconds, 2)
    return doc


# ---- other work on the machine ---------------------------------------------------------------------------------------


def _machine_busy() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _own_cpu() -> float:
    """CPU seconds of this process and every child it has reaped."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Interference:
    """How much CPU others (and the hypervisor's steal) took while a measurement ran, as a share of the machine."""

    def __enter__(self) -> Interference:
        self._wall, self._busy, self._mine = time.monotonic(), _machine_busy(), _own_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._wall
        busy, steal = _machine_busy()
        others = (busy - self._busy[0]) - (_own_cpu() - self._mine) + (steal - self._busy[1])
        self.share = max(others, 0.0) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0


def wait_quiet(limit: float = 120.0, threshold: float = 0.15) -> float:
    """Wait (up to ``limit`` s) until other processes use under ``threshold`` of the machine; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        with Interference() as probe:
            time.sleep(1.0)
        if probe.share < threshold:
            break
        log(f"  waiting: other processes use {probe.share:.0%} of the CPUs")
        time.sleep(4.0)
    return time.monotonic() - started


def clean(what: str, measure: Any, attempts: int = 3, threshold: float = 0.10) -> tuple[Any, float]:
    """Run ``measure()`` when the machine is quiet; again (up to ``attempts``) if others took over ``threshold`` of the
    CPUs meanwhile. Returns the least disturbed result and the share of the CPUs others took during it."""
    best: tuple[Any, float] | None = None
    for attempt in range(attempts):
        wait_quiet()
        with Interference() as seen:
            result = measure()
        if best is None or seen.share < best[1]:
            best = (result, seen.share)
        if seen.share < threshold:
            break
        again = f"measuring again ({attempt + 2}/{attempts})" if attempt + 1 < attempts else "keeping the calmest run"
        log(f"  {what}: other processes took {seen.share:.0%} of the CPUs; {again}")
    assert best is not None
    return best


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def verdict(ok: bool) -> str:
    return "pass" if ok else "**miss**"
