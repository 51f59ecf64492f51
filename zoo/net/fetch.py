"""The download engine: one artifact, from a mirror, its URLs or a local path, into ``<cache>/blobs/<hex>``.

This module picks the sources and commits the result; :mod:`zoo.net.transfer` moves the bytes of one source (HTTP with
retries, resume and a deadline, or a local copy) and checks them, into a :class:`zoo.net.partial.TempDownload`.

Sources, in order: the mirror (``mirror=`` or ZOO_MIRROR: an HTTP base URL or a folder holding ``blobs/<hex>`` and
``zoo.lock``, the layout of an extracted bundle), then ``artifact.urls`` (https, http, ``file://`` or a plain path).
The expected content is the registry's sha256, else the local pin (``zoo/store/pins.py``); a mirror is also asked for
what its own ``zoo.lock`` pins. Bytes that do not match are never kept, so no source can substitute content.
An artifact with no hash anywhere is pinned on its first download (trust on first use).

Files in ``<cache>/blobs/`` (every temporary name starts with "."):

    <hex>                        a verified blob, fsynced and renamed into place
    .<hex>.<random>.incomplete   a download in progress (``.<random>.incomplete`` while the hash is unknown); removed
                                 on every failure and on Ctrl-C. One left by SIGKILL is ignored ('zoo cache prune').
    .<hex>.partial (+ .json)     the valid prefix of an interrupted download whose hash and size are known, with the
                                 server's ETag/Last-Modified; the next fetch claims it by rename and resumes with Range.

Per source: 4xx, an unknown host, a bad URL and wrong content (HTML, size, hash) move on to the next source at once;
5xx, 408/429, dropped connections, bodies shorter than the known size and timeouts are retried with exponential backoff
(ZOO_RETRIES, ZOO_BACKOFF), each silent stretch limited by ZOO_TIMEOUT and each source as a whole (connect, headers
and body, retries included) by ZOO_DEADLINE. When every source fails the error lists each one: IntegrityError if some
source delivered wrong bytes, else OfflineError if offline mode skipped one (naming what set it), else DownloadError.
Refused content (``check=``) and a full disk (DiskFullError) keep nothing; SIGTERM is Ctrl-C (through the CLI): only
a resumable partial download stays.
"""

from __future__ import annotations

import contextlib
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import config
from zoo.store import cache, pins
from zoo.net import progress as progress_mod
from zoo.errors import DownloadError, IntegrityError, OfflineError
from zoo.registry.entries import Artifact
from zoo.net.partial import TempDownload
from zoo.net.transfer import Expected, Failed, Session, copy_local, http_get, transport_reason, verify
from zoo.net.transport import TransportError

MAX_LOCK = 64 << 20  # bytes: the most a mirror's zoo.lock may hold
_NEXT_STEPS = (
    "check your network connection, pass --mirror DIR|URL (or set ZOO_MIRROR), or run 'zoo bundle import FILE' "
    "with a bundle made on a machine that has it"
)


@dataclass(frozen=True)
class Fetched:
    """A verified blob in the cache."""

    path: Path  # cache.blob_path(sha256), i.e. <cache>/blobs/<hex>
    sha256: str  # "sha256:<hex>"
    size: int  # bytes
    url: str  # where the bytes came from (URL, mirror URL or path; the blob's path when reused)
    reused: bool  # already in the cache: nothing was transferred


@dataclass(frozen=True)
class _Source:
    label: str  # URL or path, as shown in messages and Fetched.url
    target: str | Path  # URL to GET, or a local file to copy
    expected: Expected


def fetch(
    artifact: Artifact,
    *,
    pin_id: str,
    mirror: str | None = None,
    force: bool = False,
    offline: bool | None = None,
    require_hash: bool | None = None,
    progress: bool | None = None,
    check: Callable[[Path], Any] | None = None,
) -> Fetched:
    """Put ``artifact`` in the cache (or find it there) and return the verified blob.

    ``check`` is called on the downloaded file before it becomes a blob or is pinned; whatever it raises (e.g. a
    WeightsError for unsafe weights) propagates, and the refused bytes are neither kept nor pinned."""
    offline_by = _offline_by(offline)
    offline = config.offline() if offline is None else offline
    require_hash = config.require_hash() if require_hash is None else require_hash
    mirror = config.mirror() if mirror is None else (mirror or None)
    progress = progress_mod.stderr_is_terminal() if progress is None else progress
    expected = _expected(artifact, pin_id)
    if require_hash and expected.sha256 is None:
        raise IntegrityError(
            f"'{pin_id}' has no sha256 in the registry and no pin in {cache.lock_file()}, and ZOO_REQUIRE_HASH "
            "refuses unpinned artifacts; add 'sha256 = \"sha256:<hex>\"' to its registry entry, import a bundle "
            "that pins it ('zoo bundle import FILE'), or unset ZOO_REQUIRE_HASH"
        )
    if not force and (hit := _cached(expected)):
        return hit
    cache.blobs_dir().mkdir(parents=True, exist_ok=True)
    with _artifact_lock(pin_id, config.deadline()):
        expected = _expected(artifact, pin_id)  # another process may have pinned it while we waited
        if not force and (hit := _cached(expected)):
            return hit
        with Session(progress, check, offline_by) as session:
            fetched = _fetch_from_sources(artifact, pin_id, expected, mirror, force, offline, session)
        if artifact.sha256 is None:
            pins.record(pin_id, fetched.sha256, fetched.size, fetched.url)
        return fetched


# ---- sources --------------------------------------------------------------------------------------------------------


def _fetch_from_sources(
    artifact: Artifact, pin_id: str, expected: Expected, mirror: str | None, force: bool, offline: bool,
    session: Session,
) -> Fetched:  # fmt: skip
    notes: list[tuple[str, str]] = []  # (the source, why it failed)
    integrity = skipped = False
    gone: list[bool] = []  # per registry URL: failed for good
    sources: list[_Source] = []
    if mirror:
        source, note = _mirror_source(mirror, pin_id, expected, offline, session)
        sources += [source] if source else []
        notes += [note] if note else []
        skipped = skipped or (offline and _is_remote(mirror))
    for url in artifact.urls:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if len(scheme) > 1 and scheme not in ("http", "https", "file"):  # one letter: a Windows drive
            notes.append((url, f"unsupported URL scheme '{scheme}' (zoo fetches https, http, file:// and paths)"))
            gone.append(True)
            continue
        sources.append(_Source(url, _target(url), expected))
    for source in sources:
        if offline and isinstance(source.target, str):
            notes.append((source.label, "skipped, offline mode forbids network access"))
            skipped = True
            continue
        try:
            return _from_source(source, pin_id, force, session)
        except Failed as failure:
            notes.append((source.label, failure.reason))
            integrity = integrity or failure.integrity
            if source.label in artifact.urls:
                gone.append(failure.gone)
    tried = "; ".join(f"{where}: {reason}" for where, reason in notes) if notes else "no sources"
    if integrity:
        raise IntegrityError(
            f"'{pin_id}': no source delivered the expected content; wrong bytes are never kept ({tried}). "
            + _integrity_hint(pin_id, expected)
        )
    if skipped:
        what = expected.sha256 or "no hash pinned yet"
        raise OfflineError(
            f"'{pin_id}' ({what}) is not in the cache ({cache.blobs_dir()}) and offline mode ({session.offline_by}) "
            f"forbids downloading it ({tried}); run 'zoo bundle import FILE' with a bundle that holds it, pass "
            f"--mirror DIR (a folder with blobs/<hex>), or {_undo_offline(session.offline_by)}"
        )
    causes = [cause_of(reason) for _, reason in notes]
    kept = ""
    if expected.sha256 and (partial := cache.blobs_dir() / f".{cache.hex_of(expected.sha256)}.partial").is_file():
        causes.append(f"the {partial.stat().st_size} bytes received are kept and the next attempt resumes from there")
        kept = f"; {causes[-1]}"
    steps = _NEXT_STEPS.replace("pass --mirror DIR|URL (or set ZOO_MIRROR)", "check that the mirror holds it") \
        if mirror else _NEXT_STEPS  # fmt: skip
    raise DownloadError(f"could not download '{pin_id}' ({tried}){kept}; {steps}",
                        gone=len(gone) == len(artifact.urls) > 0 and all(gone),
                        causes=tuple(dict.fromkeys(causes)))  # fmt: skip


CAUSES = (  # (words in a failure's reason, what a user reads): the first match wins
    ("unknown host", "DNS lookup failed (no network?)"),
    ("refused", "connection refused"),
    ("HTTP 404", "not found (HTTP 404)"),
    ("TLS", "TLS certificate not trusted"),
    ("timed out", "timed out"),
    ("zoo.lock has no entry", "not in the mirror"),
    ("no such file", "no such file"),
    ("sha256 mismatch", "wrong content (sha256 mismatch)"),
)


DETAILED = ("ZOO_", "proxy", "redirect", "connection lost")  # a reason holding these says what to change: keep it


def cause_of(reason: str) -> str:
    """Why a source failed, as the cause a user acts on: short for the common ones (DNS, refused, 404, TLS, ...), the
    reason itself when it names the setting, proxy or redirect to look at, or nothing matches."""
    import re

    if any(words in reason for words in DETAILED):
        return reason
    status = re.search(r"HTTP (\d{3})", reason)
    if status and status.group(1) != "404":
        return f"{'server error' if status.group(1).startswith('5') else 'refused by the server'} (HTTP {status.group(1)})"
    lowered = reason.lower()
    return next((said for words, said in CAUSES if words.lower() in lowered), reason)


def _offline_by(offline: bool | None) -> str:
    """What set offline mode, for messages: the --offline flag (offline=True) and/or ZOO_OFFLINE."""
    env = "ZOO_OFFLINE=1" if config.offline() else ""
    if offline:
        return "--offline" + (f" and {env}" if env else "")
    return env or "offline=False"


def _undo_offline(offline_by: str) -> str:
    steps = (["drop --offline"] if "--offline" in offline_by else []) + (
        ["unset ZOO_OFFLINE"] if "ZOO_OFFLINE" in offline_by else [])  # fmt: skip
    return " and ".join(steps) or "go online"


def _mirror_source(
    mirror: str, pin_id: str, expected: Expected, offline: bool, session: Session
) -> tuple[_Source | None, tuple[str, str] | None]:
    """The mirror's blob for this artifact, or a note (the mirror, why) saying why the mirror cannot serve it."""
    remote = _is_remote(mirror)
    where = f"mirror {mirror}"
    if remote and offline:
        return None, (where, "skipped, offline mode forbids network access")
    if expected.sha256 is None:
        try:
            entry = _mirror_lock(mirror, session).get(pin_id)
        except (Failed, IntegrityError) as exc:
            return None, (where, f"cannot read its zoo.lock ({exc})")
        if entry is None:
            return None, (where, f"its zoo.lock has no entry for '{pin_id}'")
        expected = Expected(entry["sha256"], entry["size"], f"pinned in the mirror's zoo.lock ({mirror})")
    hex_ = cache.hex_of(expected.sha256)
    if remote:
        url = f"{mirror.rstrip('/')}/blobs/{hex_}"
        return _Source(url, url, expected), None
    path = _local_path(mirror) / "blobs" / hex_
    return _Source(str(path), path, expected), None


def _mirror_lock(mirror: str, session: Session) -> dict[str, dict[str, Any]]:
    if not _is_remote(mirror):
        return pins.load_file(_local_path(mirror) / "zoo.lock")
    url = f"{mirror.rstrip('/')}/zoo.lock"
    deadline = time.monotonic() + config.deadline()  # like every request: a trickling mirror must not hang a pull
    try:
        with session.client.get(url, deadline=deadline) as response:
            if response.status == 404:
                return {}
            if response.status != 200:
                raise Failed(f"HTTP {response.status} {response.reason}".rstrip())
            text = response.read(MAX_LOCK).decode("utf-8", errors="replace")
    except TransportError as exc:  # any transport problem just means "no lock from this mirror"
        if exc.kind == "deadline":
            raise Failed(f"no complete answer within ZOO_DEADLINE={config.deadline():g}s") from None
        raise Failed(transport_reason(exc, 0)) from None
    return pins.parse(text, url)


def _from_source(source: _Source, pin_id: str, force: bool, session: Session) -> Fetched:
    """Download or copy one source into a temp file, verify it and rename it into the cache."""
    expected = source.expected
    try:
        temp = TempDownload(expected.sha256, expected.size, cache.blobs_dir())
    except OSError as exc:
        if cache.is_disk_full(exc):
            raise cache.disk_full(exc, cache.blobs_dir(), expected.size, f"'{pin_id}'") from None
        raise
    try:
        remote = isinstance(source.target, str)
        if remote and not force:
            temp.claim_partial()
        with progress_mod.bar(session.progress, pin_id, expected.size) as bar:
            for _ in range(2):  # a second pass only if a resumed download turns out wrong as a whole
                if remote:
                    http_get(session, source.label, temp, expected, bar)
                else:
                    copy_local(source.target, temp, bar)
                digest = temp.finish()
                try:
                    verify(temp, digest, expected)
                    break
                except Failed as failure:
                    if not (temp.resumed and failure.integrity):
                        raise
                    temp.reset()  # the old prefix was stale; fetch it all again
                    bar.reset(total=expected.size)
        if session.check is not None:
            try:
                session.check(temp.path)
            except BaseException:
                temp.reset()  # refused content is never kept, not even as a partial download
                raise
        path = temp.commit(cache.blob_path(digest))
        return Fetched(path, digest, temp.size, source.label, reused=False)
    except Failed as failure:
        if not failure.keep:
            temp.reset()
        raise
    except OSError as exc:
        if not cache.is_disk_full(exc):
            raise
        temp.discard()  # frees the space; a partial download the disk cannot hold is worth nothing
        raise cache.disk_full(exc, cache.blobs_dir(), expected.size or temp.announced, f"'{pin_id}'") from None
    finally:
        temp.close()


# ---- expected content, cache hits, hints ----------------------------------------------------------------------------


def _expected(artifact: Artifact, pin_id: str) -> Expected:
    if artifact.sha256 is not None:
        return Expected(artifact.sha256, artifact.size, "from the registry")
    pin = pins.get(pin_id)
    if pin is not None:
        return Expected(pin["sha256"], artifact.size or pin["size"], f"pinned in {cache.lock_file()}", pinned=True)
    return Expected(None, artifact.size, "from the registry")


def _cached(expected: Expected) -> Fetched | None:
    if expected.sha256 is None:
        return None
    path = cache.blob_path(expected.sha256)
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if expected.size is not None and size != expected.size:
        return None  # truncated or replaced: download it again
    return Fetched(path, expected.sha256, size, str(path), reused=True)


def _integrity_hint(pin_id: str, expected: Expected) -> str:
    if expected.pinned:
        return (f"If the change is legitimate, delete the '{pin_id}' entry from {cache.lock_file()} "
                "and pull again to re-pin it")  # fmt: skip
    return "The server's file differs from what the registry pins: try another source (--mirror, 'zoo bundle " \
           "import FILE') or report it to whoever maintains the registry entry"  # fmt: skip


@contextlib.contextmanager
def _artifact_lock(pin_id: str, wait: float) -> Iterator[None]:
    """Serialise fetches of one artifact. Only saves work: temp names, rename and hash check keep it correct, so a
    stuck holder must not stop us: after ``wait`` seconds the fetch goes ahead without the lock."""
    from zoo.store import locks

    with locks.hold(cache.locks_dir() / f"fetch-{re.sub(r'[^A-Za-z0-9._-]', '_', pin_id)}.lock", timeout=wait):
        yield


# ---- URLs, paths, progress ------------------------------------------------------------------------------------------


def _is_remote(location: str) -> bool:
    return urllib.parse.urlsplit(location).scheme.lower() in ("http", "https")


def _target(url: str) -> str | Path:
    """A URL to GET, or the local file a ``file://`` URL or plain path names."""
    return url if _is_remote(url) else _local_path(url)


def _local_path(location: str) -> Path:
    parts = urllib.parse.urlsplit(location)
    if parts.scheme.lower() == "file":
        return Path(urllib.request.url2pathname(parts.path)).expanduser()
    return Path(location).expanduser()


