"""Files zoo writes for the user (run outputs, verify reports, bundles): atomic, and with the umask's permissions.

``tempfile.mkstemp`` creates 0600 files, right for the cache's private temp files but not for a report a colleague
should read; the files here are created with mode 0666 and let the umask decide (0644 under the usual 022).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".incomplete"  # one of cache.TEMP_SUFFIXES: 'zoo cache prune' and zoo run's input scan know it


def temp_beside(path: Path) -> tuple[int, str]:
    """A new temp file next to ``path`` (``.<name>.<random>.incomplete``), opened for writing: (fd, its path)."""
    path = Path(path)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), str(tmp)
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue


def check_folder(folder: Path, option: str) -> None:
    """Refuse an output folder before a long job, not after it: an existing file, or a folder that cannot be created
    or written (read-only, no permission). The folder is created; ZooError says which ``option`` to change."""
    from zoo.errors import ZooError

    folder = Path(folder)
    fix = f"choose another folder with {option}"
    if folder.exists() and not folder.is_dir():
        raise ZooError(f"{option} {folder} is a file, not a folder; {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_beside(folder / "probe")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ZooError(f"cannot write the {option} folder {folder}: {exc.strerror or exc}; {fix}") from None


def write_user_file(path: Path, data: bytes | str, *, sync: bool = True) -> Path:
    """Write ``data`` to ``path`` so readers see the old file or the new one, with the umask's permissions.

    The rename replaces whatever ``path`` was, a planted symlink included: it is never written through.
    ``sync`` flushes it to disk before the rename (reports, bundles); ``zoo run``'s many small outputs skip that.
    A full disk is a DiskFullError naming the folder and the bytes needed.
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = None, None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_beside(path)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        from zoo.store import cache

        if cache.is_disk_full(exc):
            raise cache.disk_full(exc, path.parent, len(payload), str(path)) from None  # type: ignore[arg-type]
        raise
    return path


def write_user_json(path: Path, obj: Any) -> Path:
    """:func:`write_user_file` of ``obj`` as indented JSON."""
    return write_user_file(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
