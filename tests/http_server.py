"""A fault-injecting HTTP/1.1 server on 127.0.0.1 for download tests.

Usage::

    from tests.http_server import http_server  # noqa: F401  (the pytest fixture: a started FaultServer)

    def test_retry(http_server):
        url = http_server.add("/m.tgz", b"payload", fail=503, times=2)  # 503 twice, then the file
        ...
        assert [r.status for r in http_server.requests("/m.tgz")] == [503, 503, 200]

``FaultServer.add(path, body, **options) -> url`` serves ``body`` at ``path`` (GET and HEAD; adding a path again
replaces it and resets its request count). Unknown paths get 404. Options (all keyword):

    fail=CODE          answer CODE with a short text body instead of the file
    stall=SECONDS      send the body up to ``cut``, sleep, then send the rest (the sleep ends early at teardown)
    close_early=True   announce the whole Content-Length, send the body up to ``cut``, then close the connection
    reset=True         send the body up to ``cut``, pause 0.2 s (so the client reads it), then reset (TCP RST)
    times=N            fail/stall/close_early/reset apply to the first N requests of this path only
                       (default None: every request)
    cut=BYTES          where stall/close_early/reset happen, counted in the bytes this response sends (default: half)
    range="honour"     206 + Content-Range for ``Range: bytes=N-``, 416 past the end; a stale If-Range gets a 200
                       "ignore": always 200 with the whole body; "wrong": 206 whose Content-Range (and body) start at 0
    etag=True          send a strong ETag (from the content) and a Last-Modified; False: neither
    length="header"    Content-Length; "chunked": Transfer-Encoding: chunked; "close": no length, close after the body
    content_type=TYPE  default "application/octet-stream"
    html=True          serve LOGIN_PAGE as text/html instead of ``body`` (a typical login wall)
    rate=BYTES_PER_S   throttle the body (e.g. to interrupt a download half-way)
    redirect=PATH      answer 302 Found with Location: PATH
    trickle=SECONDS    send the status line, the headers and the body one byte every SECONDS (a server that is never
                       silent for long, yet never done: only a deadline stops it)

A mirror is just paths: ``add("/mirror/blobs/<hex>", data)``, ``add("/mirror/zoo.lock", lock_json)``, then use
``url("/mirror")`` as the mirror.
``FaultServer`` also has ``base`` ("http://127.0.0.1:PORT"), ``url(path)``, ``log`` (a list of ``Request``: method,
path, range, if_range, status — in arrival order), ``requests(path)`` (the log of one path) and ``clear_log()``.
It runs in a daemon thread (``start()``/``stop()``, or ``with FaultServer() as server:``); every sleep and throttle
loop is bounded and wakes up when the server stops.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

LOGIN_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
    b"<body><form action='/login'><input name='user'><input type='password' name='pw'></form></body></html>\n"
)
_RANGE = re.compile(r"^bytes=(\d+)-$")
_MAX_STALL = 30.0  # seconds; keeps a forgotten stall from hanging a test run
_TICK = 0.05  # seconds between throttled writes


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    method: str  # "GET" or "HEAD"
    path: str  # without the query string
    range: str | None  # the Range header, e.g. "bytes=100-"
    if_range: str | None  # the If-Range header
    status: int  # the status the server answered


@dataclass
class _Route:
    body: bytes
    fail: int | None = None
    stall: float = 0.0
    close_early: bool = False
    reset: bool = False
    times: int | None = None
    cut: int | None = None
    range: str = "honour"
    etag: bool = True
    length: str = "header"
    content_type: str = "application/octet-stream"
    rate: float | None = None
    redirect: str | None = None
    trickle: float | None = None
    hits: int = field(default=0)


class FaultServer(ThreadingHTTPServer):
    """In-memory files with per-path faults; see the module docstring."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, _Route] = {}
        self.log: list[Request] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.base = f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, path: str, body: bytes = b"", *, html: bool = False, **options: object) -> str:
        """Serve ``body`` at ``path`` with the given faults; returns its URL."""
        if html:
            body, options["content_type"] = LOGIN_PAGE, "text/html; charset=utf-8"
        if options.get("range", "honour") not in ("honour", "ignore", "wrong"):
            raise ValueError(f"range must be 'honour', 'ignore' or 'wrong', got {options['range']!r}")
        if options.get("length", "header") not in ("header", "chunked", "close"):
            raise ValueError(f"length must be 'header', 'chunked' or 'close', got {options['length']!r}")
        with self._lock:
            self.routes[path] = _Route(body=bytes(body), **options)  # type: ignore[arg-type]
        return self.url(path)

    def url(self, path: str) -> str:
        return self.base + path

    def requests(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.log if r.path == path]

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    def start(self) -> FaultServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # wakes stalled and throttled handlers
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hang up mid-body on purpose in these tests

    def _count(self, route: _Route) -> bool:
        """Count a request to ``route``; True if its faults apply to this one."""
        with self._lock:
            route.hits += 1
            return route.times is None or route.hits <= route.times

    def _log(self, request: Request) -> None:
        with self._lock:
            self.log.append(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultServer

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _serve(self, head: bool) -> None:
        path = urlsplit(self.path).path
        asked, if_range = self.headers.get("Range"), self.headers.get("If-Range")
        with self.server._lock:
            route = self.server.routes.get(path)
        if route is None:
            self.server._log(Request(self.command, path, asked, if_range, 404))
            return self._plain(404, b"not found\n")
        faulty = self.server._count(route)
        status, start, headers = self._plan(route, asked, if_range, faulty)
        self.server._log(Request(self.command, path, asked, if_range, status))
        if status not in (200, 206):
            return self._plain(status, b"", headers)
        payload = route.body if route.range == "wrong" else route.body[start:]
        if route.trickle is not None:
            return self._trickle(route, status, headers, payload, head)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", route.content_type)
        if route.length == "header":
            self.send_header("Content-Length", str(len(payload)))
        elif route.length == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if head:
            return None
        try:
            self._body(route, payload, faulty)
        except OSError:  # the client went away
            self.close_connection = True
        return None

    def _trickle(self, route: _Route, status: int, headers: dict[str, str], payload: bytes, head: bool) -> None:
        """Status line, headers and body, one byte every ``route.trickle`` seconds (bounded by the payload)."""
        lines = [f"HTTP/1.1 {status} OK", *(f"{k}: {v}" for k, v in headers.items()),
                 f"Content-Type: {route.content_type}", f"Content-Length: {len(payload)}", "", ""]  # fmt: skip
        data = "\r\n".join(lines).encode() + (b"" if head else payload)
        self.close_connection = True
        try:
            for i in range(len(data)):
                if self.server.stopping.wait(route.trickle):
                    return
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
        except OSError:  # the client gave up, as it should
            pass

    def _plan(self, route: _Route, asked: str | None, if_range: str | None, faulty: bool) -> tuple[int, int, dict]:
        """(status, first byte, extra headers) for a request."""
        size = len(route.body)
        headers: dict[str, str] = {}
        if route.etag:
            headers["ETag"] = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
            headers["Last-Modified"] = email.utils.formatdate(1_700_000_000, usegmt=True)
        if route.range == "honour":
            headers["Accept-Ranges"] = "bytes"
        if route.redirect is not None:
            return 302, 0, {"Location": route.redirect}
        if route.fail is not None and faulty:
            return route.fail, 0, {}
        match = _RANGE.match(asked or "")
        if match is None or route.range == "ignore":
            return 200, 0, headers
        if if_range is not None and if_range not in (headers.get("ETag"), headers.get("Last-Modified")):
            return 200, 0, headers  # the client's copy is stale: send everything
        start = int(match.group(1))
        if start >= size:
            return 416, 0, {"Content-Range": f"bytes */{size}"}
        first = 0 if route.range == "wrong" else start
        headers["Content-Range"] = f"bytes {first}-{size - 1}/{size}"
        return 206, start, headers

    def _plain(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        body = body or f"{status}\n".encode()
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self, route: _Route, payload: bytes, faulty: bool) -> None:
        cut = len(payload) // 2 if route.cut is None else min(route.cut, len(payload))
        if faulty and (route.close_early or route.reset):
            self._write(route, payload[:cut])
            if route.reset:
                self.server.stopping.wait(0.2)  # let the client read what was sent; an RST discards unread data
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()
                self.connection.close()
            self.close_connection = True
            return
        if faulty and route.stall:
            self._write(route, payload[:cut])
            self.server.stopping.wait(min(route.stall, _MAX_STALL))
            payload = payload[cut:]
        self._write(route, payload)
        if route.length == "chunked":
            self.wfile.write(b"0\r\n\r\n")

    def _write(self, route: _Route, data: bytes) -> None:
        step = max(1, int(route.rate * _TICK)) if route.rate else len(data) or 1
        for i in range(0, len(data), step):  # bounded by len(data)
            if self.server.stopping.is_set():
                raise ConnectionAbortedError("server stopping")
            piece = data[i : i + step]
            if route.length == "chunked":
                piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            self.wfile.write(piece)
            if route.rate:
                time.sleep(_TICK)


@pytest.fixture
def http_server() -> Iterator[FaultServer]:
    """A started FaultServer, stopped at teardown."""
    with FaultServer() as server:
        yield server
