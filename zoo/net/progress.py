"""What a long wait shows: a tqdm bar on a terminal, and one line on stderr for each thing zoo waits on.

A download that makes progress shows a bar (terminal only). A wait with nothing to show for it — a server that
accepted the connection and does not answer, a retry's backoff — is announced once per wait with what is being waited
on (URL, proxy, attempt), on a terminal or not, so nothing ever hangs in silence.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any

log = logging.getLogger("zoo")
NOTICE_DELAY = 2.0  # seconds: a retry backoff at least this long is announced


def notice(message: str) -> None:
    """One line on stderr about a wait (a WARNING on the "zoo" logger: shown without any logging set up)."""
    log.warning("zoo: %s", message)


def wait_notice(timeout: float) -> float:
    """Seconds of silence from a server before saying what is being waited on: soon, but not for every hiccup."""
    return min(5.0, timeout / 2)


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def bar(enabled: bool, desc: str, total: int | None) -> Any:
    if not enabled:
        return NoBar(total)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                leave=False, dynamic_ncols=True)  # fmt: skip


class NoBar(contextlib.nullcontext):
    """What a download reports progress to when no bar is shown (tqdm is not even imported)."""

    def __init__(self, total: int | None) -> None:
        super().__init__(self)
        self.total = total

    def update(self, n: int) -> None:
        pass

    def reset(self, total: int | None = None) -> None:
        self.total = total
