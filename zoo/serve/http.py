"""Running the app on uvicorn, on one machine: the socket, TLS, a header timeout, and a graceful SIGTERM.

Two things uvicorn does not do by itself are added here:

* **a header timeout** — uvicorn waits for a request's headers as long as a client keeps sending bytes, so one byte a
  second holds a connection forever. :class:`GuardedH11` answers 408 and closes a connection whose headers are not
  complete ``header_timeout`` seconds after it opened (or after its previous response).
* **exit 0 on SIGTERM** — uvicorn stops accepting, finishes in-flight requests and runs the lifespan shutdown, then
  re-raises the signal; :class:`Server` keeps the first two and ends there, so the process exits 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any

from zoo.errors import ServeError
from zoo.serve.settings import Settings

try:
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ImportError:  # the 'serve' extra is missing: run() says which to install
    uvicorn = None  # type: ignore[assignment]
    H11Protocol = object  # type: ignore[assignment,misc]


def _timeout_response(seconds: float) -> bytes:
    body = json.dumps({"error": f"the request headers did not arrive within {seconds:g} s"}).encode()
    head = (f"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n")  # fmt: skip
    return head.encode() + body


class GuardedH11(H11Protocol):  # type: ignore[misc,valid-type]
    """uvicorn's h11 protocol, plus a deadline for each request's headers."""

    header_timeout = 10.0  # set per server by :func:`protocol_for`

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.header_timer: Any = None
        self._arm()

    def _arm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
        self.header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # the headers are in; the app's own timeout covers the body

    def on_response_complete(self) -> None:
        self._arm()  # the next request on this connection gets the same deadline
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_late(self) -> None:
        self.header_timer = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        self.transport.write(_timeout_response(self.header_timeout))
        self.transport.close()


def protocol_for(settings: Settings) -> type:
    return type("GuardedH11", (GuardedH11,), {"header_timeout": settings.header_timeout})


class Server(uvicorn.Server if uvicorn is not None else object):  # type: ignore[misc]
    """uvicorn's server; SIGTERM and Ctrl-C stop it gracefully and are not re-raised (``stopped_by`` says which)."""

    stopped_by: int | None = None
    announce: Callable[[], None] | None = None  # called once the app's lifespan has started and the socket listens

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.announce is not None:
            self.announce()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        saved = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    def _stop(self, sig: int, frame: Any) -> None:
        self.stopped_by = self.stopped_by or sig
        self.handle_exit(sig, frame)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (port 0: any free one), or a ServeError saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another with --host/--port"
                         ) from None  # fmt: skip
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def configure_logging() -> None:
    """zoo's access log (one line per request, formatted by the guard) on stderr; uvicorn's own at warnings only."""
    access = logging.getLogger("zoo.serve.access")
    access.handlers[:] = [logging.StreamHandler(sys.stderr)]
    access.setLevel(logging.INFO)
    access.propagate = False


def run(app: Any, settings: Settings, *, host: str, port: int, ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None, announce: Callable[[str], None] | None = None) -> int:  # fmt: skip
    """Serve ``app`` until SIGTERM or Ctrl-C; the signal number that stopped it (0 if it stopped by itself)."""
    if uvicorn is None:
        from zoo.serve import INSTALL

        raise ServeError(f"zoo serve needs uvicorn, which is not installed; run: {INSTALL}")
    if bool(ssl_certfile) != bool(ssl_keyfile) and not ssl_certfile:
        raise ServeError("--ssl-keyfile needs --ssl-certfile; give both (or only a certfile that holds the key)")
    configure_logging()
    config = uvicorn.Config(app, http=protocol_for(settings), lifespan="on", access_log=False, log_level="warning",
                            ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, timeout_keep_alive=5,
                            limit_concurrency=settings.max_inflight * 4 + 64, timeout_graceful_shutdown=None,
                            server_header=False)  # fmt: skip
    try:
        config.load()
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ServeError(f"cannot use the TLS files ({ssl_certfile}, {ssl_keyfile}): {exc}; "
                         "check --ssl-certfile/--ssl-keyfile") from None  # fmt: skip
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    scheme = "https" if ssl_certfile else "http"
    server = Server(config)
    if announce is not None:
        where = f"[{host}]" if ":" in host else host
        server.announce = lambda: announce(f"zoo serve: {', '.join(settings.models)} on {scheme}://{where}:{bound}; "
                                           "SIGTERM or Ctrl-C stops it")  # fmt: skip
    try:
        server.run(sockets=[sock])
    except SystemExit:  # uvicorn's way of saying the lifespan failed
        server.started = False
    if not server.started:
        raise ServeError("the server did not start (see the messages above); the models may not load — "
                         "try 'zoo run NAME IMAGE' with the same --backend/--precision")  # fmt: skip
    return server.stopped_by or 0
