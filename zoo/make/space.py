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
        if cache.is_disk_full(exc) or shutil.disk_usage(folder).free < need:
            cause = exc if isinstance(exc, OSError) and cache.is_disk_full(exc) else full
            raise cache.disk_full(cause, folder, need, what) from None
        raise
