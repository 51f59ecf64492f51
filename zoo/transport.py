"""HTTP(S) GETs for zoo.fetch, on the standard library.

What a download needs and nothing more: redirects between http and https only, proxies from the environment
(``http_proxy``, ``https_proxy``, ``no_proxy``), a TLS context built only when an https URL is opened, one timeout
for each connect and each read, and a body read one socket receive at a time, up to ``BLOCK`` bytes, straight into a
new buffer. A large block keeps the Python work per byte small (this loop runs at loopback speed); one receive per
block means a connection that drops mid-body loses nothing already received, so a resumed download asks for exactly
the missing bytes.

Every failure in transit is a ``TransportError`` with a ``kind``; HTTP error statuses are not failures here: they come
back as a ``Response`` for the caller to judge.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.message import Message
from typing import Any

BLOCK = 1 << 20  # most bytes one receive may return


class TransportError(Exception):
    """A request or a body that failed in transit."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind  # "unknown-host" | "timeout" | "tls" | "invalid-url" | "connection"
        self.detail = detail

    @property
    def retry(self) -> bool:
        """Whether the same request may succeed later."""
        return self.kind in ("timeout", "connection")


class Response:
    """An HTTP response whose body has not been read yet."""

    def __init__(self, raw: Any, status: int, reason: str, headers: Message):
        self._raw = raw
        self.status = status
        self.reason = reason
        self.headers = headers  # case-insensitive .get()

    def blocks(self) -> Iterator[bytes]:
        """The body, one socket receive (at most BLOCK bytes) at a time; ends at the end of the body or when the
        server closes the connection (the caller compares with Content-Length)."""
        while True:
            try:
                block = self._raw.read1(BLOCK)
            except Exception as exc:  # noqa: BLE001 — converted or re-raised by _failure
                raise _failure(exc) from None
            if not block:
                return
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
        for handler in (urllib.request.ProxyHandler(), urllib.request.HTTPHandler(), _LazyTLSHandler(),
                        _RedirectHandler(), urllib.request.HTTPDefaultErrorHandler(),
                        urllib.request.HTTPErrorProcessor()):  # fmt: skip
            self._opener.add_handler(handler)
        self._opener.addheaders = list(headers.items())

    def get(self, url: str, headers: dict[str, str] | None = None) -> Response:
        """Send a GET (following redirects) and return the response, whatever its status."""
        try:
            request = urllib.request.Request(url, headers=headers or {})
            raw = self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:  # an error status, or a redirect zoo does not follow
            return Response(exc, exc.code, str(exc.reason or ""), exc.headers)
        except Exception as exc:  # noqa: BLE001 — converted or re-raised by _failure
            raise _failure(exc) from None
        return Response(raw, raw.status, raw.reason or "", raw.headers)


class _LazyTLSHandler(urllib.request.HTTPSHandler):
    """HTTPS with one TLS context, built on the first https request (loading CA certificates takes ~20 ms)."""

    def __init__(self) -> None:
        super().__init__()
        self.context: ssl.SSLContext | None = None

    def https_open(self, req: urllib.request.Request) -> Any:
        if self.context is None:
            self.context = _tls_context()
        return self.do_open(http.client.HTTPSConnection, req, context=self.context)


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


def _failure(exc: BaseException) -> BaseException:
    """The TransportError for a failure in transit; anything else is returned unchanged (to be re-raised)."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        inner = exc.reason
        if isinstance(inner, BaseException):
            return _failure(inner)
        return TransportError("connection", str(inner))
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
