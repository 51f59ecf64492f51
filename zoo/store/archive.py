"""Safe extraction of model archives (tar, .tgz/.tar.gz and other compressed tars, zip) and bundles.

Every member is checked before a single byte is written, by one policy for tar and zip alike: only regular files and
folders (no links, devices, FIFOs; no encrypted zip members), relative names without ``..``, no duplicates, names on
an allowlist, a bounded count, and bounded sizes — the declared sizes may add up to at most ``max_bytes`` (default
``ZOO_MAX_UNPACKED``, 1 GiB: five times PaddleSeg's largest model) and, beyond the first MiB, to at most
``ZOO_MAX_RATIO`` (100) times the archive's own size, so a decompression bomb is refused once its headers are read,
not after it was unpacked. While writing, no member may yield more than it declared. A tar must end with its
end-of-archive marker (a truncated download is not mistaken for a short archive); zip members must not share data (a
zip bomb's trick). Pickle side files (``model.pdiparams.info``) are skipped. Files are written by this module, not by
``tarfile``/``zipfile``'s extract, into a ``.staging-*`` folder on the cache's filesystem; the entry becomes visible
only through :func:`zoo.store.cache.commit_tree`, complete, its manifest written last. A Paddle model's ``model.pdiparams``
must hold exactly its program's parameters (:mod:`zoo.formats.params`) before it is committed.
"""

from __future__ import annotations

import gzip
import logging
import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from zoo import config
from zoo.formats import params
from zoo.store import cache
from zoo.errors import ArchiveError

log = logging.getLogger(__name__)

MAX_MEMBERS = 64  # a PaddleSeg inference archive holds a folder and 3-5 files
MAX_BYTES: int | None = None  # unpacked bytes; None: ZOO_MAX_UNPACKED
RATIO_GRACE = 1 << 20  # up to this many unpacked bytes the ratio is not checked (small text files pack well)
BUNDLE_MAX_MEMBERS = 100_000
BUNDLE_MAX_BYTES = 256 << 30
PADDLE_FILES = frozenset({"model.pdmodel", "model.json", "model.pdiparams", "deploy.yaml"})
SKIPPED_FILES = frozenset({"model.pdiparams.info"})  # pickles: never unpacked, never loaded
ONNX_FILE = "model.onnx"
_ONNX_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.onnx$")
_DRIVE = re.compile(r"^[A-Za-z]:")
_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile,
                NotImplementedError)  # fmt: skip
_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_MODEL_HINT = ("it is not the Paddle model its program describes; check the registry entry's 'inference' URL, or run "
               "'zoo pull NAME --from weights'")
REFETCH = "delete it and pull again ('zoo pull NAME --force'), or report the URL"


@dataclass(frozen=True)
class _Member:
    """One archive member as the checks see it, tar and zip alike."""

    name: str  # as stored
    problem: str | None  # why it is no plain file or folder (a link, a device, encrypted, ...), or None
    is_dir: bool
    size: int  # declared unpacked bytes (0 for a folder)
    handle: Any  # its TarInfo or ZipInfo, to read it


@dataclass(frozen=True)
class _Limits:
    members: int  # at most this many members
    bytes: int  # declared sizes add up to at most this
    archive_size: int  # bytes of the archive file itself
    ratio: int  # unpacked / archive size, beyond RATIO_GRACE


def is_archive(path: Path) -> bool:
    """Whether ``path`` is a zip or a (possibly compressed) tar, judged by its content."""
    return _looks_zip(path) or tarfile.is_tarfile(path)


def _looks_zip(path: Path) -> bool:
    """A zip by its directory at the end, or (a cut-off one) by its first local header."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04" or zipfile.is_zipfile(f)


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
    hint: str = REFETCH,
) -> list[str]:
    """Check every member of ``archive`` (a zip or a tar, judged by content), then write its regular files under
    ``dest`` (an empty folder).

    ``allow`` decides which (flattened) names may exist; ``flatten`` strips a single top folder; the limits default to
    MAX_MEMBERS and ZOO_MAX_UNPACKED. Returns the names written. Raises ArchiveError, naming the member and the
    problem, before writing anything if a check fails.
    """
    if max_bytes is None:
        max_bytes = MAX_BYTES if MAX_BYTES is not None else config.max_unpacked()
    limits = _Limits(MAX_MEMBERS if max_members is None else max_members, max_bytes, archive.stat().st_size,
                     config.max_ratio())  # fmt: skip
    kind = "zip" if _looks_zip(archive) else "tar"
    plan: list[tuple[_Member, str]] = []
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                plan = _plan(_zip_members(zf, archive, hint), archive, allow, flatten, limits, hint)
                for member, name in plan:
                    _write_member(zf.open(member.handle), member, dest, name, archive, hint)
        else:
            with tarfile.open(archive, "r:*") as tf:
                plan = _plan(_tar_members(tf, archive, hint), archive, allow, flatten, limits, hint)
                for member, name in plan:
                    _write_member(tf.extractfile(member.handle), member, dest, name, archive, hint)
    except ArchiveError:
        raise
    except OSError as exc:
        if cache.is_disk_full(exc):  # the plan declared every member's size: say what the entry needs in all
            raise cache.disk_full(exc, dest.parent, sum(m.size for m, _ in plan), "this entry") from None
        if not isinstance(exc, _READ_ERRORS):
            raise
        raise ArchiveError(f"{archive} is not a readable {kind} archive ({exc}); {hint}") from None
    except _READ_ERRORS as exc:
        raise ArchiveError(f"{archive} is not a readable {kind} archive ({exc}); {hint}") from None
    return [name for _, name in plan]


def _tar_members(tf: tarfile.TarFile, archive: Path, hint: str) -> Iterator[_Member]:
    """A tar's members as they are read (so a bomb stops at its first huge header), then the end-marker check."""
    for info in tf:
        yield _Member(info.name, _tar_problem(info), info.isdir(), info.size if info.isfile() else 0, info)
    _check_end_marker(tf, archive, hint)


def _tar_problem(info: tarfile.TarInfo) -> str | None:
    if info.issym():
        return f"is a symbolic link (to '{info.linkname}')"
    if info.islnk():
        return f"is a hard link (to '{info.linkname}')"
    if info.ischr() or info.isblk():
        return "is a device file"
    if info.isfifo():
        return "is a FIFO"
    if info.issparse() or not (info.isfile() or info.isdir()):
        return f"is not a regular file or folder (tar type {info.type!r})"
    return None


def _zip_members(zf: zipfile.ZipFile, archive: Path, hint: str) -> Iterator[_Member]:
    infos = zf.infolist()
    # A zip bomb points many entries at the same compressed data: each member's local header and data must end
    # before the next member's header starts.
    spans = sorted((i.header_offset, i.header_offset + len(i.FileHeader()) + i.compress_size, i.filename)
                   for i in infos)  # fmt: skip
    for (_, end, name), (start, _, _) in zip(spans, spans[1:]):
        if start < end:
            raise ArchiveError(f"{archive}: member '{name}' shares its data with another member; refusing to "
                               f"extract anything — {hint}")  # fmt: skip
    for info in infos:
        yield _Member(info.filename, _zip_problem(info), info.is_dir(), 0 if info.is_dir() else info.file_size, info)


def _zip_problem(info: zipfile.ZipInfo) -> str | None:
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_IFMT(mode):  # made on unix: the file type is recorded
        if stat.S_ISLNK(mode):
            return "is a symbolic link"
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            return f"is not a regular file or folder (mode {oct(mode)})"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if not info.is_dir() and info.compress_type not in _ZIP_METHODS:
        return f"uses compression method {info.compress_type} (zoo reads stored and deflated members)"
    return None


def _plan(
    found: Iterator[_Member],
    archive: Path,
    allow: Callable[[str], bool],
    flatten: bool,
    limits: _Limits,
    hint: str,
) -> list[tuple[_Member, str]]:
    """Every check, no writes: the list of (member, name to write)."""

    def bad(member: str, what: str) -> ArchiveError:
        return ArchiveError(f"{archive}: member '{member}' {what}; refusing to extract anything — {hint}")

    members: list[tuple[_Member, tuple[str, ...]]] = []
    declared = 0
    for count, member in enumerate(found, start=1):
        if count > limits.members:
            raise ArchiveError(f"{archive} has more than {limits.members} members; refusing to extract it — {hint}")
        if member.problem:
            raise bad(member.name, member.problem)
        parts = _checked_parts(member, bad)
        declared += member.size
        _check_size(member.name, declared, limits, bad)  # before the next header: a bomb's data is never inflated
        if parts:  # the archive's own root folder ('./') carries nothing
            members.append((member, parts))
    if all(m.is_dir for m, _ in members):
        raise ArchiveError(f"{archive} holds no files; {hint}")

    strip = 0
    if flatten:
        tops = {parts[0] for _, parts in members}
        if len(tops) == 1 and all(len(parts) >= 2 for m, parts in members if not m.is_dir):
            strip = 1

    plan: list[tuple[_Member, str]] = []
    seen: dict[str, str] = {}
    folders: set[str] = {""}  # folders some file lies in; "" is the (flattened) top
    for member, parts in members:
        kept = parts[strip:]
        name = "/".join(kept)
        kind = "folder" if member.is_dir else "file"
        if name in seen:
            raise bad(member.name, f"appears twice (as a {seen[name]} and as a {kind})")
        seen[name] = kind
        if member.is_dir:
            continue
        folders.update("/".join(kept[:i]) for i in range(1, len(kept)))
        if name in SKIPPED_FILES:
            log.info("%s: skipping %s (a pickle side file zoo never needs or loads)", archive, member.name)
            continue
        if not allow(name):
            raise bad(member.name, "is not a file zoo expects in this archive")
        plan.append((member, name))
    for member, parts in members:
        name = "/".join(parts[strip:])
        if not member.is_dir and name in folders:
            raise bad(member.name, "is a file, but other members lie under it")
        if member.is_dir and name not in folders:
            raise bad(member.name, "is a folder zoo does not expect in this archive")
    return plan


def _check_size(name: str, declared: int, limits: _Limits, bad: Callable[[str, str], ArchiveError]) -> None:
    """The caps on what the archive says it unpacks to, so far (pip and conda cap archives the same two ways)."""
    if declared > limits.bytes:
        raise bad(name, f"takes the archive past {limits.bytes} unpacked bytes, zoo's cap (ZOO_MAX_UNPACKED=BYTES "
                        "raises it for a model that really is that big)")  # fmt: skip
    if declared > RATIO_GRACE and declared > limits.ratio * limits.archive_size:
        raise bad(name, f"takes the archive to {declared} unpacked bytes from {limits.archive_size}, more than "
                        f"{limits.ratio} times its size: a decompression bomb (the limit is ZOO_MAX_RATIO)")  # fmt: skip


def _checked_parts(member: _Member, bad: Callable[[str, str], ArchiveError]) -> tuple[str, ...]:
    """The member's name as path components, or an ArchiveError saying why it is unsafe."""
    raw = member.name
    if not raw or "\x00" in raw or "\\" in raw:
        raise bad(raw, "has an invalid name")
    if raw.startswith("/") or _DRIVE.match(raw):
        raise bad(raw, "has an absolute path")
    parts = tuple(p for p in PurePosixPath(raw).parts if p != ".")
    if ".." in parts:
        raise bad(raw, "climbs out of the archive with '..'")
    if not parts and not member.is_dir:
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


def _write_member(source: IO[bytes] | None, member: _Member, dest: Path, name: str, archive: Path, hint: str) -> None:
    target = dest.joinpath(*name.split("/"))
    if dest.resolve() not in target.resolve().parents:  # belt and braces: the name checks already forbid this
        raise ArchiveError(f"{archive}: member '{member.name}' would land outside {dest}; {hint}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source is None:
        raise ArchiveError(f"{archive}: member '{member.name}' has no data; {hint}")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    written = 0
    with os.fdopen(fd, "wb") as out, source:
        while chunk := source.read(min(cache.CHUNK, member.size - written + 1)):
            written += len(chunk)
            if written > member.size:  # never more than it declared, whatever its stream holds
                raise ArchiveError(f"{archive}: member '{member.name}' holds more than its declared {member.size} "
                                   f"bytes; refusing it — {hint}")  # fmt: skip
            out.write(chunk)
    if written != member.size:
        raise ArchiveError(
            f"{archive}: member '{member.name}' holds {written} of its {member.size} bytes; the archive is truncated "
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
        params.check_model(cache.program_file(stage), stage / cache.PARAMS_FILE, _MODEL_HINT)
        return commit(stage, parent, provenance)


def extract_onnx_model(archive: Path, provenance: dict[str, Any]) -> Path:
    """Unpack an archive holding one .onnx file (stored as model.onnx) into ``onnx/<key>/``; return the .onnx path."""
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
    """Run zoo.formats.onnx_meta's ONNX check when that module is available (it imports onnx, so only on demand)."""
    try:
        from zoo.formats.onnx_meta import check_onnx as _check
    except ImportError:
        log.info("zoo.make.convert.check_onnx is unavailable; %s is stored unchecked", path)
        return
    _check(path)


def commit(stage: Path, parent: Path, provenance: dict[str, Any]) -> Path:
    """:func:`zoo.store.cache.commit_tree`, but a same-key entry that no longer matches its manifest is replaced."""
    final = cache.commit_tree(stage, parent, provenance)
    if stage.exists() and cache.check_tree(final):  # an older copy was there, and it is damaged
        cache.discard(final)
        final = cache.commit_tree(stage, parent, provenance)
    return final
