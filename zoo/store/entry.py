"""One cache entry: a folder of files committed atomically, with a manifest (file list and provenance) written last.

Also the atomic writers every other cache file uses. Nothing here knows the cache's layout or model names; that is
zoo/store/cache.py, which re-exports these names (callers say ``cache.commit_tree`` and so on).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoo.errors import DiskFullError, IntegrityError, NotCachedError
from zoo.util import now as _now
from zoo.util import sha256_bytes, sha256_file

TEMP_PREFIX = ".staging-"  # folders being built or discarded
TEMP_SUFFIXES = (".incomplete", ".partial", ".partial.json")  # files being downloaded or written
MANIFEST = "manifest.json"


def hex_of(digest: str) -> str:
    """'sha256:<hex>' → '<hex>'."""
    return digest.split(":", 1)[1] if digest.startswith("sha256:") else digest


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error means the disk (or the user's quota) is full."""
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: OSError, folder: Path, need: int | None, what: str = "") -> DiskFullError:
    """The one-line error for a full disk: which folder, how many bytes were needed, how many are free."""
    import errno
    import shutil

    try:
        free = f"{shutil.disk_usage(folder).free} bytes are free"
    except OSError:
        free = "its free space is unknown"
    cause = "disk quota exceeded" if exc.errno == errno.EDQUOT else "no space left on the device"
    needs = f"{what or 'this'} needs {need} bytes" if need is not None else f"{what or 'this'} needs more space"
    return DiskFullError(
        f"{cause} in {folder}: {needs}, {free}; nothing half-written was kept — free up space there (or point "
        "ZOO_HOME at a larger disk) and run the command again"
    )


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old content or the new, never a mix."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".incomplete", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if is_disk_full(exc):
            raise disk_full(exc, path.parent, len(data), f"writing {path.name}") from None
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@contextlib.contextmanager
def staging(parent: Path, need: int | None = None) -> Iterator[Path]:
    """A fresh ``.staging-*`` folder beside the final entry; removed on any failure (incl. Ctrl-C). A full disk while
    it is in use becomes a DiskFullError naming ``parent`` and ``need`` (bytes the entry needs, when known)."""
    import shutil
    import tempfile

    path = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=parent))
        yield path
    except OSError as exc:
        if not is_disk_full(exc) or isinstance(exc, DiskFullError):
            raise
        written = _tree_size(path) if path is not None else 0
        what = "this entry" if need is not None else f"this entry ({written} bytes written when it ran out)"
        raise disk_full(exc, parent, need, what) from None
    finally:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


def _tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def file_records(folder: Path) -> dict[str, dict[str, Any]]:
    """{relative name: {sha256, size}} for every file under folder except the manifest."""
    records = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST:
            records[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return records


def tree_key(files: dict[str, dict[str, Any]]) -> str:
    """Content key of a folder: sha256 of its sorted (name, sha256) list."""
    listing = "\n".join(f"{name} {rec['sha256']}" for name, rec in sorted(files.items()))
    return hex_of(sha256_bytes(listing.encode()))


def commit_tree(stage: Path, parent: Path, provenance: dict[str, Any]) -> Path:
    """Hash a staged folder, write its manifest last, and rename it into ``parent/<key>``.

    If an identical entry is already there (another process won the race), the staged copy is dropped.
    """
    files = file_records(stage)
    key = tree_key(files)
    manifest = {"key": key, "files": files, "provenance": provenance, "created": _now()}
    atomic_write_json(stage / MANIFEST, manifest)
    fsync_dir(stage)
    final = parent / key
    if (final / MANIFEST).is_file():
        if not check_tree(final):
            return final
        discard(final)  # a damaged copy of this very entry: the fresh one replaces it
    try:
        os.rename(stage, final)
    except OSError:
        if not (final / MANIFEST).is_file():
            raise
    fsync_dir(parent)
    return final


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise NotCachedError(f"{folder} has no {MANIFEST}; it is not a complete cache entry — run 'zoo cache prune'")
    return read_json(path)


def check_tree(folder: Path) -> list[str]:
    """Problems of one entry against its manifest: corrupt, missing and stray files (empty list: intact)."""
    manifest = read_manifest(folder)
    expected = manifest.get("files", {})
    problems = []
    for name, rec in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"missing {name}")
        elif path.stat().st_size != rec["size"] or sha256_file(path) != rec["sha256"]:
            problems.append(f"corrupt {name} (expected {rec['sha256']})")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST and rel not in expected:
            problems.append(f"stray {rel}")
    return problems


def verify_files(folder: Path, names: list[str], fix: str = "run 'zoo pull NAME --force' to fetch it again") -> None:
    """Re-hash the named files of an entry (e.g. params before converting); raise IntegrityError on a mismatch."""
    manifest = read_manifest(folder)
    for name in names:
        rec = manifest["files"].get(name)
        path = folder / name
        if rec is None or not path.is_file():
            raise IntegrityError(f"{path} is missing from the cache entry; {fix}")
        got = sha256_file(path)
        if got != rec["sha256"]:
            raise IntegrityError(f"{path} is corrupt: expected {rec['sha256']}, got {got}; {fix}")


def is_temp(name: str) -> bool:
    """Whether a file or folder name is one of zoo's temporary names (never a finished entry)."""
    return name.startswith(TEMP_PREFIX) or name.endswith(TEMP_SUFFIXES)


def discard(path: Path) -> None:
    """Remove an entry folder or file so that readers see it whole or gone: rename aside, then delete."""
    if path.is_dir() and not path.is_symlink():
        import shutil

        aside = path.with_name(f"{TEMP_PREFIX}discard-{path.name}-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        shutil.rmtree(aside, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
