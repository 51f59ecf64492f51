"""Progress for long work, on stderr, only on a terminal or when asked (``ZOO_PROGRESS=1``; ``0`` silences it).

Where the number of steps is known, a tqdm bar with k/N and an ETA (:func:`steps`, :func:`counter`); where it is not,
a spinner that says what zoo is doing and for how long (:func:`spinner`). Lines printed while a bar is shown go
through :func:`echo`, so the bar stays below them instead of being torn in half. Nothing here prints to stdout
except :func:`echo`'s own lines: ``--json`` output stays clean.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
SPIN_FRAMES = "|/-\\"
SPIN_PERIOD = 0.2  # seconds between spinner frames


def enabled() -> bool:
    """Whether progress is shown: ZOO_PROGRESS if set, else whether stderr is a terminal."""
    from zoo import config

    forced = config.progress()
    if forced is not None:
        return forced
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stderr
        return False


class Quiet:
    """What :func:`counter` returns when progress is off: the same calls, no output, tqdm not imported."""

    def __init__(self, total: int | None = None) -> None:
        self.total, self.n = total, 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def counter(total: int | None, desc: str, unit: str = "it") -> Any:
    """A bar counting ``unit`` s towards ``total`` (k/N, rate and ETA), or :class:`Quiet` when progress is off."""
    if not enabled():
        return Quiet(total)
    from tqdm import tqdm

    # width: the terminal's, re-read as it changes; never more than 80 so a bar fits where the rest of zoo fits
    # a few slow steps (calibration images, tune's trials): each one drawn; many quick ones: redrawn 10 times a second
    few = total is not None and total <= 100
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True, ncols=80,
                mininterval=0 if few else 0.1, miniters=1 if few else None,
                bar_format="{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}] {bar}{postfix}")  # fmt: skip


def steps(items: Iterable[T], total: int | None, desc: str, unit: str = "it") -> Iterator[T]:
    """``items`` unchanged, counted on a bar as they are consumed."""
    with counter(total, desc, unit) as bar:
        for item in items:
            yield item
            bar.update(1)


def echo(line: str, *, err: bool = False) -> None:
    """Print one line above any bar that is showing (tqdm clears and redraws it), stdout unless ``err``."""
    stream = sys.stderr if err else sys.stdout
    if "tqdm" in sys.modules:
        from tqdm import tqdm

        tqdm.write(line, file=stream)
    else:
        stream.write(line + "\n")
    stream.flush()


@contextlib.contextmanager
def spinner(what: str) -> Iterator[None]:
    """While the block runs, ``| what (3 s)`` turning on stderr; the line is cleared when it ends.

    It writes to its own copy of stderr's file descriptor, so a block that silences fd 2 (Ray's start-up does, for
    its C++ core's lines) still shows it turning."""
    if not enabled():
        yield
        return
    stop = threading.Event()
    start = time.monotonic()
    try:
        sys.stderr.flush()  # what was written before comes first
        out: Any = os.fdopen(os.dup(sys.stderr.fileno()), "w", encoding="utf-8", errors="replace")
    except (AttributeError, OSError, ValueError):  # a stderr without a file descriptor (ZOO_PROGRESS=1 under a test)
        out = sys.stderr

    def turn() -> None:
        frame = 0
        while not stop.wait(SPIN_PERIOD if frame else 0):
            elapsed = f" ({time.monotonic() - start:.0f} s)"
            text = f"{SPIN_FRAMES[frame % len(SPIN_FRAMES)]} {what[: 77 - len(elapsed)]}{elapsed}"  # within 80 columns
            out.write("\r" + text + "\033[K")
            out.flush()
            frame += 1
        out.write("\r\033[K")
        out.flush()

    thread = threading.Thread(target=turn, name="zoo-spinner", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if out is not sys.stderr:
            out.close()
