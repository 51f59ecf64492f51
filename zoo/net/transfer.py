"""Moving one artifact's bytes into a temp file: HTTP GETs with retries, resume and a deadline, or a local copy; then
the checks of what arrived (size, sha256, HTML pages). :mod:`zoo.net.fetch` picks the sources and commits the result.

Every failure of one attempt is a :class:`Failed` saying whether to retry, whether the bytes so far are still a valid
prefix (``keep``), whether the source delivered wrong content (``integrity``) and whether it is gone for good.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import config
from zoo.net import progress as progress_mod
from zoo.net.partial import TempDownload
from zoo.net.transport import Client, TransportError, proxy_for

CHUNK = 1 << 20  # bytes per read when copying a local file
MAX_DELAY = 30.0  # cap of one backoff sleep, seconds
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


@dataclass(frozen=True)
class Expected:
    sha256: str | None  # what the bytes must hash to
    size: int | None  # how many bytes there must be
    origin: str  # where that came from, for messages
    pinned: bool = False  # it came from the local zoo.lock (so re-pinning is the user's call)


class Failed(Exception):
    """One attempt on one source failed."""

    def __init__(self, reason: str, *, retry: bool = False, keep: bool = True, integrity: bool = False,
                 gone: bool = False):  # fmt: skip
        super().__init__(reason)
        self.reason = reason
        self.retry = retry  # another attempt on the same source may succeed
        self.keep = keep  # the bytes received so far are still a valid prefix
        self.integrity = integrity  # the source delivered wrong bytes
        self.gone = gone  # the source does not have it (4xx, unknown host, no such file): waiting will not help


class Session:
    """What one fetch needs throughout: its settings, and a transport client created only when a source needs the
    network."""

    def __init__(self, progress: bool, check: Callable[[Path], Any] | None, offline_by: str) -> None:
        self.progress = progress  # show a progress bar
        self.check = check  # called on the finished download before it is committed
        self.offline_by = offline_by  # "--offline" or "ZOO_OFFLINE": what set offline mode
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from zoo.util import version

            self._client = Client(
                timeout=config.timeout(),
                headers={"User-Agent": f"zoo/{version()}", "Accept-Encoding": "identity"},
            )
        return self._client

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client = None


def http_get(session: Session, url: str, temp: TempDownload, expected: Expected, bar: Any) -> None:
    """GET ``url`` into ``temp`` with retries, resuming from what ``temp`` already holds."""
    deadline = time.monotonic() + config.deadline()
    attempts = 1 + config.retries()
    last: Failed | None = None
    for attempt in range(attempts):
        if attempt:
            delay = max(min(config.backoff() * 2 ** (attempt - 1), MAX_DELAY, deadline - time.monotonic()), 0)
            if delay >= progress_mod.NOTICE_DELAY:
                progress_mod.notice(f"{url}: {last.reason if last else ''}; retrying in {delay:.0f} s "
                                    f"(attempt {attempt + 1} of {attempts})")  # fmt: skip
            time.sleep(delay)
        if time.monotonic() >= deadline:
            break
        try:
            _request(session, url, temp, expected, bar, deadline, f"attempt {attempt + 1} of {attempts}")
            return
        except Failed as failure:
            if not (failure.keep and temp.resumable):  # resume only what a known hash will check as a whole
                temp.reset()
                bar.reset(total=expected.size)
            if not failure.retry:
                raise
            last = failure
    reason = last.reason if last else "no attempt was made"
    if time.monotonic() >= deadline:
        raise Failed(f"{reason}; gave up after ZOO_DEADLINE={config.deadline():g}s")
    raise Failed(f"{reason} (gave up after {attempts} attempts)")


def _request(session: Session, url: str, temp: TempDownload, expected: Expected, bar: Any, deadline: float,
             attempt: str) -> None:  # fmt: skip
    """One GET, bounded as a whole by ``deadline``; appends to ``temp`` on 206, restarts it on 200. Raises Failed."""
    offset = temp.size
    headers = {}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if temp.validator and temp.validator_url == url:
            headers["If-Range"] = temp.validator
    received, length = 0, None
    try:
        via = f" through proxy {proxy}" if (proxy := proxy_for(url)) else ""

        def waiting(seconds: float) -> None:  # called by the transport's watchdog when the server goes quiet
            progress_mod.notice(f"waiting for {url}{via}: nothing received for {seconds:.0f} s ({attempt}; "
                                f"ZOO_TIMEOUT={config.timeout():g}s, ZOO_DEADLINE={config.deadline():g}s)")  # fmt: skip

        with session.client.get(url, headers, deadline=deadline, on_wait=waiting,
                                wait_notice=progress_mod.wait_notice(config.timeout())) as response:  # fmt: skip
            _check_status(response)
            if response.status == 206:
                _check_content_range(response.headers.get("content-range"), offset, expected)
                temp.resumed = True
            elif offset:  # the server ignored Range, or the file changed (If-Range): start over
                temp.reset()
                bar.reset(total=expected.size)
            temp.validator_url = url
            temp.validator = _validator(response.headers)
            temp.html_type = "text/html" in response.headers.get("content-type", "").lower()
            length = _content_length(response.headers)
            temp.announced = None if length is None else temp.size + length
            if response.status == 200 and length is not None and expected.size not in (None, length):
                raise Failed(size_reason(expected, length, temp.html_type), keep=False, integrity=True)
            if bar.total is None and length is not None:
                bar.total = temp.size + length
            for block in response.blocks():  # one socket receive each: a dropped connection loses nothing
                temp.write(block)
                received += len(block)
                bar.update(len(block))
                if expected.size is not None and temp.size > expected.size:
                    raise Failed(size_reason(expected, temp.size, temp.looks_html()), keep=False, integrity=True)
                if time.monotonic() > deadline:
                    raise Failed(f"still downloading after ZOO_DEADLINE={config.deadline():g}s")
    except TransportError as exc:
        if exc.kind == "deadline":  # keep=True: what arrived stays resumable
            raise Failed(f"no complete answer within ZOO_DEADLINE={config.deadline():g}s ({exc.detail}; "
                          f"{temp.size} bytes received)") from None  # fmt: skip
        reason = transport_reason(exc, received, length)
        raise Failed(reason, retry=exc.retry, gone=exc.kind in ("unknown-host", "invalid-url")) from None
    if length is not None and received != length:  # some servers close early without a protocol error
        raise Failed(f"connection lost after {received} of {length} bytes (the server closed it early)", retry=True)
    if expected.size is not None and temp.size < expected.size:  # no length announced, and the body ended short
        raise Failed(f"connection lost after {temp.size} of {expected.size} bytes (the server closed it early)",
                      retry=True)  # fmt: skip


def copy_local(path: Path, temp: TempDownload, bar: Any) -> None:
    if not path.is_file():  # stat, never open: opening a FIFO would block, /dev/zero never ends
        raise Failed(_not_a_file(path), gone=True)
    temp.reset()
    try:
        src = open(path, "rb")  # noqa: SIM115 — closed below
    except OSError as exc:
        raise Failed(f"cannot read it ({exc.strerror or exc})", keep=False) from None
    with src:
        while True:
            try:
                chunk = src.read(CHUNK)
            except OSError as exc:  # a read error; a write error (a full disk) is not the source's fault
                raise Failed(f"cannot read it ({exc.strerror or exc})", keep=False) from None
            if not chunk:
                break
            temp.write(chunk)
            bar.update(len(chunk))


def verify(temp: TempDownload, digest: str, expected: Expected) -> None:
    html = temp.looks_html()
    page = "; it is an HTML page (usually a login, error or 'download' page), not the artifact" if html else ""
    if expected.sha256 is not None:
        if digest != expected.sha256:
            raise Failed(f"sha256 mismatch: expected {expected.sha256} ({expected.origin}), got {digest}{page}",
                          keep=False, integrity=True)  # fmt: skip
    elif html:
        raise Failed(
            "the server returned an HTML page (usually a login, error or 'download' page), not the artifact; "
            "open the URL in a browser, or fix the URL in the registry",
            keep=False,
        )
    if expected.size is not None and temp.size != expected.size:
        raise Failed(size_reason(expected, temp.size, html), keep=False, integrity=True)


# ---- HTTP details ---------------------------------------------------------------------------------------------------


def _check_status(response: Any) -> None:
    code = response.status
    if code in (200, 206):
        return
    reason = f"HTTP {code} {response.reason}".rstrip() + (f" (from proxy {response.proxy})" if response.proxy else "")
    if code == 416:  # our prefix is not a prefix of this file: start over
        raise Failed(reason, retry=True, keep=False)
    raise Failed(reason, retry=code >= 500 or code in (408, 429), gone=400 <= code < 500 and code not in (408, 429))


def _check_content_range(value: str | None, offset: int, expected: Expected) -> None:
    match = _CONTENT_RANGE.match(value or "")
    if match is None or int(match.group(1)) != offset:
        raise Failed(f"asked for bytes {offset}- but the server answered Content-Range {value!r}; "
                      "the partial download was dropped", keep=False)  # fmt: skip
    total = match.group(3)
    if total != "*" and expected.size is not None and int(total) != expected.size:
        raise Failed(size_reason(expected, int(total), False), keep=False, integrity=True)


def _validator(headers: Any) -> str | None:
    """A strong ETag, else Last-Modified: what If-Range may carry."""
    etag = headers.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("last-modified")


def _content_length(headers: Any) -> int | None:
    value = headers.get("content-length")
    return int(value) if value and value.strip().isdigit() else None


def transport_reason(exc: TransportError, received: int, length: int | None = None) -> str:
    if exc.kind == "unknown-host":
        return f"unknown host ({exc.detail})"
    if exc.kind == "timeout":
        return f"timed out after ZOO_TIMEOUT={config.timeout():g}s ({exc.detail})"
    if received or length:
        of = f" of {length}" if length is not None else ""
        return f"connection lost after {received}{of} bytes ({exc.detail})"
    return exc.detail


def size_reason(expected: Expected, got: int, html: bool) -> str:
    page = "; it is an HTML page (usually a login, error or 'download' page), not the artifact" if html else ""
    return f"size mismatch: expected {expected.size} bytes ({expected.origin}), got {got}{page}"


def _not_a_file(path: Path) -> str:
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")  # fmt: skip
    return f"it is {kind}, not a regular file; zoo copies only regular files"
