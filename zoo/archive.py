"""Safe extraction of model archives and bundles.

Every member of a tar is checked before a single byte is written: only regular files and folders, relative names
without ``..``, no duplicates, names on an allowlist, bounded count and size, and a proper end-of-archive marker (a
truncated download is not mistaken for a short archive). Pickle side files (``model.pdiparams.info``) are skipped. Files
are written by this module, not by ``tarfile.extract``, into a ``.staging-*`` folder on the cache's filesystem; the
entry becomes visible only through :func:`zoo.cache.commit_tree`, complete, its manifest written last.
"""

from __future__ import annotations

import gzip
import logging
import lzma
import os
import re
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from zoo import cache
from zoo.errors import ArchiveError

log = logging.getLogger(__name__)

MAX_MEMBERS = 64  # a PaddleSeg inference tar holds a folder and 3-5 files
MAX_BYTES = 4 << 30  # unpacked; the largest zoo model is ~200 MB
BUNDLE_MAX_MEMBERS = 100_000
BUNDLE_MAX_BYTES = 256 << 30
PADDLE_FILES = frozenset({"model.pdmodel", "model.json", "model.pdiparams", "deploy.yaml"})
SKIPPED_FILES = frozenset({"model.pdiparams.info"})  # pickles: never unpacked, never loaded
ONNX_FILE = "model.onnx"
_ONNX_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.onnx$")
_DRIVE = re.compile(r"^[A-Za-z]:")
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)
_REFETCH = "delete it and pull again ('zoo pull NAME --force'), or report the URL"


def is_paddle_file(name: str) -> bool:
    """Allowlist of a Paddle inference archive (after flattening its top folder)."""
    return name in PADDLE_FILES


def is_onnx_file(name: str) -> bool:
    """Allowlist of an ONNX archive: one *.onnx, maybe a deploy.yaml."""
    return bool(_ONNX_NAME.match(name)) or name == "deploy.yaml"


def extract(
    archive: Path,
    dest: Path,
    *,
    allow: Callable[[str], bool],
    flatten: bool = False,
    max_members: int | None = None,
    max_bytes: int | None = None,
    hint: str = _REFETCH,
) -> list[str]:
    """Check every member of ``archive``, then write its regular files under ``dest`` (an empty folder).

    ``allow`` decides which (flattened) names may exist; ``flatten`` strips a single top folder; the limits default to
    MAX_MEMBERS and MAX_BYTES. Returns the names written. Raises ArchiveError, naming the member and the problem,
    before writing anything if a check fails.
    """
    max_members = MAX_MEMBERS if max_members is None else max_members
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    try:
        with tarfile.open(archive, "r:*") as tf:
            plan = _plan(tf, archive, allow, flatten, max_members, max_bytes, hint)
            for info, name in plan:
                _write_member(tf, info, dest, name, archive, hint)
    except ArchiveError:
        raise
    except _READ_ERRORS as exc:
        raise ArchiveError(f"{archive} is not a readable tar archive ({exc}); {hint}") from None
    return [name for _, name in plan]


def _plan(
    tf: tarfile.TarFile,
    archive: Path,
    allow: Callable[[str], bool],
    flatten: bool,
    max_members: int,
    max_bytes: int,
    hint: str,
) -> list[tuple[tarfile.TarInfo, str]]:
    """Every check, no writes: the list of (member, name to write)."""

    def bad(member: str, what: str) -> ArchiveError:
        return ArchiveError(f"{archive}: member '{member}' {what}; refusing to extract anything — {hint}")

    members: list[tuple[tarfile.TarInfo, tuple[str, ...]]] = []
    for count, info in enumerate(tf, start=1):
        if count > max_members:
            raise ArchiveError(f"{archive} has more than {max_members} members; refusing to extract it — {hint}")
        parts = _checked_parts(info, bad)
        if parts:  # the archive's own root folder ('./') carries nothing
            members.append((info, parts))
    _check_end_marker(tf, archive, hint)
    if not any(info.isfile() for info, _ in members):
        raise ArchiveError(f"{archive} holds no files; {hint}")

    strip = 0
    if flatten:
        tops = {parts[0] for _, parts in members}
        if len(tops) == 1 and all(len(parts) >= 2 for info, parts in members if info.isfile()):
            strip = 1

    plan: list[tuple[tarfile.TarInfo, str]] = []
    seen: dict[str, str] = {}
    folders: set[str] = {""}  # folders some file lies in; "" is the (flattened) top
    total = 0
    for info, parts in members:
        kept = parts[strip:]
        name = "/".join(kept)
        kind = "folder" if info.isdir() else "file"
        if name in seen:
            raise bad(info.name, f"appears twice (as a {seen[name]} and as a {kind})")
        seen[name] = kind
        if info.isdir():
            continue
        folders.update("/".join(kept[:i]) for i in range(1, len(kept)))
        if name in SKIPPED_FILES:
            log.info("%s: skipping %s (a pickle side file zoo never needs or loads)", archive, info.name)
            continue
        if not allow(name):
            raise bad(info.name, "is not a file zoo expects in this archive")
        total += info.size
        if total > max_bytes:
            raise ArchiveError(f"{archive} unpacks to more than {max_bytes} bytes; refusing to extract it — {hint}")
        plan.append((info, name))
    for info, parts in members:
        name = "/".join(parts[strip:])
        if info.isfile() and name in folders:
            raise bad(info.name, "is a file, but other members lie under it")
        if info.isdir() and name not in folders:
            raise bad(info.name, "is a folder zoo does not expect in this archive")
    return plan


def _checked_parts(info: tarfile.TarInfo, bad: Callable[[str, str], ArchiveError]) -> tuple[str, ...]:
    """The member's name as path components, or an ArchiveError saying why it is unsafe."""
    if info.issym():
        raise bad(info.name, f"is a symbolic link (to '{info.linkname}')")
    if info.islnk():
        raise bad(info.name, f"is a hard link (to '{info.linkname}')")
    if info.ischr() or info.isblk():
        raise bad(info.name, "is a device file")
    if info.isfifo():
        raise bad(info.name, "is a FIFO")
    if info.issparse() or not (info.isfile() or info.isdir()):
        raise bad(info.name, f"is not a regular file or folder (tar type {info.type!r})")
    raw = info.name
    if not raw or "\x00" in raw or "\\" in raw:
        raise bad(raw, "has an invalid name")
    if raw.startswith("/") or _DRIVE.match(raw):
        raise bad(raw, "has an absolute path")
    parts = tuple(p for p in PurePosixPath(raw).parts if p != ".")
    if ".." in parts:
        raise bad(raw, "climbs out of the archive with '..'")
    if not parts and not info.isdir():
        raise bad(raw, "has an empty name")
    return parts


def _check_end_marker(tf: tarfile.TarFile, archive: Path, hint: str) -> None:
    """tarfile stops quietly at a cut-off or garbled header; a complete tar ends with a zero block there."""
    tf.fileobj.seek(tf.offset)
    block = tf.fileobj.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE:
        raise ArchiveError(f"{archive} is truncated (no end-of-archive marker); the download was cut short — {hint}")
    if block.count(0) != tarfile.BLOCKSIZE:
        raise ArchiveError(f"{archive} is corrupt at byte {tf.offset} (not a tar header); {hint}")


def _write_member(tf: tarfile.TarFile, info: tarfile.TarInfo, dest: Path, name: str, archive: Path, hint: str) -> None:
    target = dest.joinpath(*name.split("/"))
    if dest.resolve() not in target.resolve().parents:  # belt and braces: the name checks already forbid this
        raise ArchiveError(f"{archive}: member '{info.name}' would land outside {dest}; {hint}")
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tf.extractfile(info)
    if source is None:
        raise ArchiveError(f"{archive}: member '{info.name}' has no data; {hint}")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    written = 0
    with os.fdopen(fd, "wb") as out, source:
        while chunk := source.read(cache.CHUNK):
            out.write(chunk)
            written += len(chunk)
    if written != info.size:
        raise ArchiveError(
            f"{archive}: member '{info.name}' holds {written} of its {info.size} bytes; the archive is truncated "
            f"— {hint}"
        )


# ---- model archives -------------------------------------------------------------------------------------------------


def extract_paddle_model(archive: Path, provenance: dict[str, Any]) -> Path:
    """Unpack a Paddle inference archive into ``models/<key>/`` and return that folder.

    The archive may hold the files at its top or (as PaddleSeg's do) in one top folder, which is flattened.
    """
    parent = cache.models_dir()
    with cache.staging(parent) as stage:
        names = extract(archive, stage, allow=is_paddle_file, flatten=True)
        if not any(n in names for n in cache.PROGRAM_FILES) or cache.PARAMS_FILE not in names:
            raise ArchiveError(
                f"{archive} is not a Paddle inference model: it holds {', '.join(sorted(names)) or 'no files'}, "
                f"expected model.json or model.pdmodel and {cache.PARAMS_FILE}; check the registry entry's "
                "'inference' URL, or run 'zoo pull NAME --from weights'"
            )
        return commit(stage, parent, provenance)


def extract_onnx_model(archive: Path, provenance: dict[str, Any]) -> Path:
    """Unpack a tar holding one .onnx file (stored as model.onnx) into ``onnx/<key>/``; return the .onnx path."""
    parent = cache.onnx_dir()
    with cache.staging(parent) as stage:
        names = extract(archive, stage, allow=is_onnx_file, flatten=True)
        models = [n for n in names if n.endswith(".onnx")]
        if len(models) != 1:
            raise ArchiveError(
                f"{archive} holds {len(models)} .onnx files, expected exactly one; check the registry entry's 'onnx' "
                "URL, or run 'zoo convert NAME' to make the ONNX model locally"
            )
        if models[0] != ONNX_FILE:
            os.rename(stage / models[0], stage / ONNX_FILE)
        check_onnx(stage / ONNX_FILE)
        return commit(stage, parent, provenance) / ONNX_FILE


def check_onnx(path: Path) -> None:
    """Run zoo.onnx_meta's ONNX check when that module is available (it imports onnx, so only on demand)."""
    try:
        from zoo.onnx_meta import check_onnx as _check
    except ImportError:
        log.info("zoo.convert.check_onnx is unavailable; %s is stored unchecked", path)
        return
    _check(path)


def commit(stage: Path, parent: Path, provenance: dict[str, Any]) -> Path:
    """:func:`zoo.cache.commit_tree`, but a same-key entry that no longer matches its manifest is replaced."""
    final = cache.commit_tree(stage, parent, provenance)
    if stage.exists() and cache.check_tree(final):  # an older copy was there, and it is damaged
        cache.discard(final)
        final = cache.commit_tree(stage, parent, provenance)
    return final
