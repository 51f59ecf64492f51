"""Inter-process locks on files in ``<cache>/locks/``: one process at a time per artifact, ref, conversion or pin file.

``flock(2)`` on POSIX, ``msvcrt.locking`` on Windows. The OS drops a lock when the process holding it dies, so a
killed zoo never leaves one behind. A thread that already holds a path's lock gets it again at once (re-entrant);
other threads of the same process wait like other processes do.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

_held = threading.local()  # .paths: the lock files this thread holds
_MAX_POLL = 0.25  # seconds between attempts while waiting with a timeout


@contextlib.contextmanager
def hold(path: Path, timeout: float | None = None) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs, and yield True.

    With ``timeout`` (seconds), stop waiting after that long and yield False: the block then runs without the lock,
    which suits locks that only save work (e.g. two processes downloading the same file).
    """
    key = os.path.abspath(path)
    held: set[str] = _held.__dict__.setdefault("paths", set())
    if key in held:
        yield True
        return
    Path(key).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        got = _acquire(fd, timeout)
        if got:
            held.add(key)
        try:
            yield got
        finally:
            if got:
                held.discard(key)
                _unlock(fd)
    finally:
        os.close(fd)


def _acquire(fd: int, timeout: float | None) -> bool:
    if timeout is None and os.name != "nt":
        _lock(fd, wait=True)
        return True
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            _lock(fd, wait=False)
            return True
        except OSError:  # held elsewhere (BlockingIOError on POSIX, PermissionError on Windows)
            if deadline is not None and time.monotonic() >= deadline:
                return False
        left = _MAX_POLL if deadline is None else max(deadline - time.monotonic(), 0.0)
        time.sleep(min(delay, left))
        delay = min(delay * 2, _MAX_POLL)


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int, wait: bool) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int, wait: bool) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
