"""zoo.store.locks: exclusive between processes and threads, re-entrant within a thread, released when the holder dies."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from zoo.store import locks

HOLDER = """
import sys, time
from pathlib import Path
from zoo.store import locks
with locks.hold(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_another_process_holding_it_makes_us_wait_until_it_dies(tmp_path: Path) -> None:
    """Order, not the clock: a waiter gets the lock only after the holder died, and a short timeout gives up."""
    path = tmp_path / "locks" / "x.lock"
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    events: list[str] = []
    waiting = threading.Event()

    def waiter() -> None:
        waiting.set()
        with locks.hold(path, timeout=120) as got:
            events.append(f"acquired {got}")

    thread = threading.Thread(target=waiter)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with locks.hold(path, timeout=0.3) as got:
            assert got is False  # gave up waiting; the block runs unlocked
        thread.start()
        waiting.wait(10)
        thread.join(1.0)  # a waiter that ignored the holder would be done by now
        events.append("killed")
        child.kill()  # SIGKILL: the OS drops its lock, nothing is left behind
        child.wait(timeout=10)
        thread.join(120)
        assert events == ["killed", "acquired True"]
        with locks.hold(path, timeout=5) as got:
            assert got is True
    finally:
        child.kill()
        child.wait(timeout=10)
        if thread.is_alive():
            thread.join(10)


def test_reentrant_in_one_thread_exclusive_between_threads(tmp_path: Path) -> None:
    path = tmp_path / "y.lock"
    seen: list[bool] = []

    def take(timeout: float) -> None:
        with locks.hold(path, timeout=timeout) as got:
            seen.append(got)

    with locks.hold(path) as outer:
        with locks.hold(path, timeout=0.1) as inner:  # same thread: no deadlock, no wait
            assert outer is True and inner is True
        worker = threading.Thread(target=take, args=(0.2,))
        worker.start()
        worker.join()
        assert seen == [False]  # held by this thread, so another thread cannot take it
    worker = threading.Thread(target=take, args=(2.0,))
    worker.start()
    worker.join()
    assert seen == [False, True]  # released on leaving the block


def test_a_waiter_without_timeout_gets_the_lock_when_the_holder_leaves(tmp_path: Path) -> None:
    path = tmp_path / "z.lock"
    order: list[str] = []

    def wait_for_it() -> None:
        with locks.hold(path):  # no timeout: blocks until the holder leaves
            order.append("waiter")

    with locks.hold(path):
        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        time.sleep(0.3)
        order.append("holder leaves")
    waiter.join(timeout=10)
    assert order == ["holder leaves", "waiter"]
