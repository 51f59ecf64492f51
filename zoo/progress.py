"""What a long wait shows: a tqdm bar on a terminal, and one line on stderr for each thing zoo waits on.

A download that makes progress shows a bar (terminal only). A wait with nothing to show for it — a server that
accepted the connection and does not answer, a retry's backoff — is announced once per wait with what is being waited
on (URL, proxy, attempt), on a terminal or not, so nothing ever hangs in silence.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any


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
