"""Disk space a long job needs, checked before it starts and named when it runs out anyway."""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

from zoo.errors import DiskFullError


@contextlib.contextmanager
def reserved(folder: Path, need: int, what: str) -> Iterator[None]:
    """Refuse before the work when ``folder``'s disk has less than ``need`` bytes free, and turn a failure inside into
    a DiskFullError when the disk is the cause: libraries that hit ENOSPC half-way often report a truncated file
    (onnx: "Wire format was corrupt") rather than the disk, so the free space is looked at again after a failure."""
    from zoo.store import cache

    full = OSError(errno.ENOSPC, "No space left on device")
    if shutil.disk_usage(folder).free < need:
        raise cache.disk_full(full, folder, need, what)
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - whatever a library made of ENOSPC; re-raised unless the disk is full
        if isinstance(exc, DiskFullError):
            raise
        cause = _disk_full_cause(exc)
        if cause is not None or shutil.disk_usage(folder).free < need:
            raise cache.disk_full(cause or full, folder, need, what) from None
        raise


def _disk_full_cause(exc: BaseException) -> OSError | None:
    """The ENOSPC/EDQUOT OSError behind ``exc``, however deep a library wrapped it (None if there is none)."""
    from zoo.store import cache

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and cache.is_disk_full(current):
            return current
        current = current.__cause__ or current.__context__
    return None
