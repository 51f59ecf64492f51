"""HTTP(S) GETs for zoo.net.fetch, on the standard library.

What a download needs and nothing more: redirects between http and https only, proxies from the environment
(``http_proxy``, ``https_proxy``, ``no_proxy``), a TLS context built only when an https URL is opened, one timeout
for each connect and each read, and a body read one socket receive at a time, up to ``BLOCK`` bytes, straight into a
new buffer. A large block keeps the Python work per byte small (this loop runs at loopback speed); one receive per
block means a connection that drops mid-body loses nothing already received, so a resumed download asks for exactly
the missing bytes.

Every failure in transit is a ``TransportError`` with a ``kind``; HTTP error statuses are not failures here: they come
back as a ``Response`` for the caller to judge.

A request may carry a deadline: a watchdog thread shuts the socket down when it passes, so connect, the status line
and headers (however slowly a server trickles them) and the body all count against it — a per-read timeout alone is
reset by every byte. The same watchdog tells the caller when nothing has been heard for a while (``on_wait``), and
every failure names the proxy the request went through, if any.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

BLOCK = 1 << 20  # most bytes one receive may return


class TransportError(Exception):
    """A request or a body that failed in transit."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind  # "unknown-host" | "timeout" | "tls" | "invalid-url" | "connection" | "deadline"
        self.detail = detail

    @property
    def retry(self) -> bool:
        """Whether the same request may succeed later."""
        return self.kind in ("timeout", "connection")


class Response:
    """An HTTP response whose body has not been read yet."""

    def __init__(self, raw: Any, status: int, reason: str, headers: Message, watch: _Watchdog | None = None,
                 proxy: str | None = None):  # fmt: skip
        self._raw = raw
        self.status = status
        self.reason = " ".join(reason.split())  # urllib's redirect-loop reason spans lines
        self.headers = headers  # case-insensitive .get()
        self.proxy = proxy  # the proxy the request went through, if any
        self._watch = watch

    def blocks(self) -> Iterator[bytes]:
        """The body, one socket receive (at most BLOCK bytes) at a time; ends at the end of the body or when the
        server closes the connection (the caller compares with Content-Length)."""
        while True:
            try:
                block = self._raw.read1(BLOCK)
            except Exception as exc:  # noqa: BLE001 — converted or re-raised by _failure
                raise _failure(exc, self._watch, self.proxy) from None
            if not block:
                if self._watch is not None and self._watch.fired:
                    raise self._watch.error()
                return
            if self._watch is not None:
                self._watch.heard()
            yield block

    def read(self, limit: int) -> bytes:
        """The whole body, refusing one longer than ``limit`` bytes."""
        data = bytearray()
        for block in self.blocks():
            data += block
            if len(data) > limit:
                raise TransportError("connection", f"response longer than {limit} bytes")
        return bytes(data)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.stop()
        self._raw.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    """Opens GET requests; one per download, no connection pool (a download is one long request)."""

    def __init__(self, *, timeout: float, headers: dict[str, str]):
        self.timeout = timeout
        self._opener = urllib.request.OpenerDirector()
        self.watch: _Watchdog | None = None  # the watchdog of the request being opened
        for handler in (urllib.request.ProxyHandler(), _WatchedHTTPHandler(self), _LazyTLSHandler(self),
                        _RedirectHandler(), urllib.request.HTTPDefaultErrorHandler(),
                        urllib.request.HTTPErrorProcessor()):  # fmt: skip
            self._opener.add_handler(handler)
        self._opener.addheaders = list(headers.items())

    def get(self, url: str, headers: dict[str, str] | None = None, *, deadline: float | None = None,
            on_wait: Callable[[float], None] | None = None, wait_notice: float = 5.0) -> Response:  # fmt: skip
        """Send a GET (following redirects) and return the response, whatever its status.

        ``deadline`` (a ``time.monotonic()`` value) bounds the whole request, body included, until the response is
        closed; ``on_wait(seconds)`` is called (from another thread) once nothing has arrived for ``wait_notice``
        seconds."""
        proxy = proxy_for(url)
        watch = self.watch = _Watchdog(deadline, on_wait, wait_notice)
        try:
            request = urllib.request.Request(url, headers=headers or {})
            raw = self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:  # an error status, or a redirect zoo does not follow
            return Response(exc, exc.code, str(exc.reason or ""), exc.headers, watch, proxy)
        except Exception as exc:  # noqa: BLE001 — converted or re-raised by _failure
            watch.stop()
            raise _failure(exc, watch, proxy) from None
        finally:
            self.watch = None
        watch.heard()
        return Response(raw, raw.status, raw.reason or "", raw.headers, watch, proxy)


def proxy_for(url: str) -> str | None:
    """The proxy urllib sends ``url`` through (http_proxy, https_proxy, no_proxy), or None."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme.lower())
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


class _Watchdog:
    """One request's deadline and silence notice, on a timer thread: at the deadline the request's socket is shut
    down (which ends a blocked connect, header or body read at once); after ``notice`` seconds without a byte,
    ``on_wait`` is told, once."""

    def __init__(self, deadline: float | None, on_wait: Callable[[float], None] | None, notice: float):
        self.deadline = deadline
        self.fired = False
        self._on_wait, self._notice = on_wait, notice
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._last = time.monotonic()
        self._thread: threading.Thread | None = None
        if deadline is not None or on_wait is not None:
            self._thread = threading.Thread(target=self._run, name="zoo-watchdog", daemon=True)
            self._thread.start()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                self._shut(sock)

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.001)

    def heard(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._stopped.set()

    def error(self) -> TransportError:
        return TransportError("deadline", "the request (connect, headers and body) ran past its deadline")

    def _run(self) -> None:
        told = self._on_wait is None
        while not self._stopped.is_set():
            now = time.monotonic()
            if self.deadline is not None and now >= self.deadline:
                with self._lock:
                    self.fired = True
                    for sock in self._sockets:
                        self._shut(sock)
                return
            if not told and now - self._last >= self._notice:
                told = True
                with contextlib.suppress(Exception):  # a notice must never break a download
                    self._on_wait(now - self._last)  # type: ignore[misc]
            waits = [0.5] + ([self.deadline - now] if self.deadline is not None else [])
            self._stopped.wait(max(min(waits), 0.01))

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _WatchedConnection(http.client.HTTPConnection):
    """An HTTP connection whose connect is bounded by the request's deadline and whose socket the watchdog holds."""

    watch: _Watchdog | None = None

    def connect(self) -> None:
        remaining = self.watch.remaining() if self.watch else None
        if remaining is not None:
            self.timeout = min(self.timeout, remaining) if isinstance(self.timeout, int | float) else remaining
        super().connect()
        if self.watch is not None:
            self.watch.attach(self.sock)


class _WatchedHTTPSConnection(_WatchedConnection, http.client.HTTPSConnection):
    pass


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, client: Client) -> None:
        super().__init__()
        self._client = client

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_bound(_WatchedConnection, self._client.watch), req)


def _bound(cls: type, watch: _Watchdog | None) -> Any:
    """A connection factory whose connections report to ``watch``."""

    def make(*args: Any, **kwargs: Any) -> Any:
        conn = cls(*args, **kwargs)
        conn.watch = watch
        return conn

    return make


class _LazyTLSHandler(urllib.request.HTTPSHandler):
    """HTTPS with one TLS context, built on the first https request (loading CA certificates takes ~20 ms)."""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.context: ssl.SSLContext | None = None
        self._client = client

    def https_open(self, req: urllib.request.Request) -> Any:
        if self.context is None:
            self.context = _tls_context()
        return self.do_open(_bound(_WatchedHTTPSConnection, self._client.watch), req, context=self.context)


def _tls_context() -> ssl.SSLContext:
    """The system's CA certificates (SSL_CERT_FILE / SSL_CERT_DIR honoured), else certifi's if it is installed."""
    context = ssl.create_default_context()
    if not context.cert_store_stats().get("x509_ca"):
        try:
            import certifi
        except ImportError:
            return context
        context.load_verify_locations(cafile=certifi.where())
    return context


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http and https URLs only (never to ftp: or file:)."""

    def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Message) -> Any:
        location = headers.get("location") or headers.get("uri") or ""
        target = urllib.parse.urljoin(req.full_url, location)
        if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
            raise urllib.error.HTTPError(target, code, f"{msg} - redirect to {target} refused: zoo follows only "
                                         "http and https", headers, fp)  # fmt: skip
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _failure(exc: BaseException, watch: _Watchdog | None = None, proxy: str | None = None) -> BaseException:
    """The TransportError for a failure in transit (naming the proxy, if one was used); anything else is returned
    unchanged (to be re-raised)."""
    if watch is not None and watch.fired:  # the watchdog shut the socket: whatever broke, the deadline did it
        return watch.error()
    error = _classify(exc)
    if proxy and isinstance(error, TransportError) and error.kind != "invalid-url":
        error = TransportError(error.kind, f"{error.detail} (through proxy {proxy})")
    return error


def _classify(exc: BaseException) -> BaseException:
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        inner = exc.reason
        if isinstance(inner, BaseException):
            return _classify(inner)
        return TransportError("invalid-url", str(inner))  # "no host given", "unknown url type": waiting won't help
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, socket.gaierror):
        return TransportError("unknown-host", detail)
    if isinstance(exc, TimeoutError):
        return TransportError("timeout", detail)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransportError("tls", f"TLS certificate not trusted: {exc.verify_message or detail}")
    if isinstance(exc, http.client.InvalidURL) or (isinstance(exc, ValueError) and "url" in detail.lower()):
        return TransportError("invalid-url", detail)
    if isinstance(exc, http.client.IncompleteRead):
        return TransportError("connection", f"the body ended early ({type(exc).__name__})")
    if isinstance(exc, OSError | http.client.HTTPException):  # resets, refused connections, protocol errors
        return TransportError("connection", f"{type(exc).__name__}: {detail}")
    return exc
