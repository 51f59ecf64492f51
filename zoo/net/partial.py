"""The temp file of one download in ``<cache>/blobs/``: written, hashed and written back as it arrives.

``TempDownload`` is a unique ``.<hex>.<random>.incomplete`` file (``.<random>.incomplete`` while the hash is unknown).
When the download fails part-way and its hash and size are known, ``close`` keeps the valid prefix as
``.<hex>.partial`` with ``.<hex>.partial.json`` (the server's validator), which the next fetch claims by rename and
resumes; otherwise the file is removed. ``commit`` fsyncs and renames it into place as the verified blob.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from zoo.store.entry import fsync_dir, hex_of

CHUNK = 1 << 20  # bytes per read when re-hashing a partial download
WRITEBACK = 8 << 20  # bytes: a download starts its writeback to disk after every this many (see _start_writeback)
HEAD = 512  # bytes kept from the start of a download to recognise an HTML page


class TempDownload:
    """A unique ``.incomplete`` file in ``folder`` (the cache's blobs/); left behind as ``.<hex>.partial`` only when it
    can be resumed."""

    def __init__(self, sha256: str | None, size: int | None, folder: Path):
        self.folder = folder
        self.expected_size = size  # bytes the finished download must have (None: unknown)
        self.hex = hex_of(sha256) if sha256 else None
        self.resumable = self.hex is not None and size is not None
        prefix = f".{self.hex}." if self.hex else "."
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".incomplete", dir=folder)
        self.path = Path(name)
        self.file = os.fdopen(fd, "r+b")
        self.validator: str | None = None  # ETag or Last-Modified of the bytes we hold
        self.validator_url: str | None = None  # ... as given by this URL
        self.html_type = False  # the last response said text/html
        self.resumed = False  # the bytes came from more than one response
        self.committed = False
        self.announced: int | None = None  # the size the server announced for the whole file, if it did
        self._hash = Sha256()
        self._start()

    def _start(self) -> None:
        self.size = 0
        self.head = b""
        self._written_back = 0  # bytes whose writeback to disk has been started
        self._hash.close()  # waits for a block still being hashed
        self._hash = Sha256()

    @property
    def partial(self) -> Path:
        return self.folder / f".{self.hex}.partial"

    @property
    def partial_meta(self) -> Path:
        return self.folder / f".{self.hex}.partial.json"

    def claim_partial(self) -> None:
        """Take over a previous run's partial download (an atomic rename, so only one process gets it)."""
        if not self.resumable:
            return
        try:
            meta = json.loads(self.partial_meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        self.file.close()
        try:
            os.replace(self.partial, self.path)
        except FileNotFoundError:
            pass
        with contextlib.suppress(OSError):
            self.partial_meta.unlink()
        self.file = open(self.path, "r+b")  # noqa: SIM115 — closed by close()/commit()
        while chunk := self.file.read(CHUNK):
            self._add(chunk)
        self._written_back = self.size  # an earlier run wrote it: the kernel writes it back on its own
        if self.size >= (self.expected_size or 0):
            self.reset()  # cannot be a proper prefix
        elif isinstance(meta, dict):
            self.validator, self.validator_url = meta.get("validator"), meta.get("url")

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self._add(chunk)
        if self.size - self._written_back >= WRITEBACK:
            self.file.flush()
            _start_writeback(self.file.fileno(), self._written_back, self.size - self._written_back)
            self._written_back = self.size

    def _add(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        if len(self.head) < HEAD:
            self.head += chunk[: HEAD - len(self.head)]
        self.size += len(chunk)

    def reset(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.validator = self.validator_url = None
        self.resumed = self.html_type = False
        self._start()

    def looks_html(self) -> bool:
        start = self.head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        return self.html_type or start.startswith((b"<!doctype html", b"<html"))

    def finish(self) -> str:
        """Flush and fsync; the sha256 of everything written."""
        self.file.flush()
        os.fsync(self.file.fileno())
        return "sha256:" + self._hash.hexdigest()

    def commit(self, dest: Path) -> Path:
        self.file.close()
        os.replace(self.path, dest)  # an identical blob from a concurrent fetch may be replaced: same bytes
        self.committed = True
        fsync_dir(dest.parent)
        return dest

    def close(self) -> None:
        """Remove the temp file, or keep it as the resumable partial if it holds a useful prefix."""
        self._hash.close()
        if self.committed:
            return
        with contextlib.suppress(OSError):
            self.file.close()
        if self.resumable and 0 < self.size < (self.expected_size or 0):
            try:
                meta = {"url": self.validator_url, "validator": self.validator}
                self.partial_meta.write_text(json.dumps(meta), encoding="utf-8")
                os.replace(self.path, self.partial)
                return
            except OSError:  # e.g. a full disk: keep neither half
                with contextlib.suppress(OSError):
                    self.partial_meta.unlink()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def discard(self) -> None:
        """Drop everything received, so that close() removes the file instead of keeping it as a partial."""
        with contextlib.suppress(OSError):
            self.file.seek(0)
            self.file.truncate()
        self.size = 0


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range of the file to disk now, without waiting (Linux sync_file_range with
    SYNC_FILE_RANGE_WRITE), so the fsync that ends a download waits for its last few MiB only. Elsewhere, and if the
    call fails, nothing happens: it is only a head start."""
    call = _sync_file_range()
    if call is not None:
        call(fd, offset, length, 2)  # 2 = SYNC_FILE_RANGE_WRITE; the result is ignored on purpose


@functools.cache
def _sync_file_range() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


class Sha256:
    """sha256 of a download, hashed on a worker thread while the next block is received (hashlib and socket reads
    both release the GIL, so hashing costs no wall time as long as it keeps up with the network)."""

    THREADED = 1 << 16  # bytes: smaller blocks are hashed in place

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._pool: Any = None
        self._pending: Any = None

    def update(self, block: bytes) -> None:
        self._wait()
        if len(block) < self.THREADED:
            self._hash.update(block)
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="zoo-sha256")
        self._pending = self._pool.submit(self._hash.update, bytes(block))  # a copy only if it was a view

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def hexdigest(self) -> str:
        self._wait()
        return self._hash.hexdigest()

    def close(self) -> None:
        self._wait()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
