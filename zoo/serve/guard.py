"""What wraps every request, as one ASGI middleware: bearer auth, the in-flight cap, the per-request timeout, the
access log line and the request metrics. Handlers behind it only see requests that are allowed to run.

Order matters: auth (401) and the in-flight cap (429) are decided from the headers alone, before a byte of the body
is read, so neither an unauthenticated client nor a crowd can make the server buffer bodies.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from typing import Any

from zoo.serve.metrics import Metrics
from zoo.serve.settings import Settings

ACCESS = logging.getLogger("zoo.serve.access")
OPEN_PATHS = ("/v2/health/live", "/v2/health/ready")  # probes work without the token
_MODEL = re.compile(r"^/v[12]/models/([^/]+)")


async def send_json(send: Any, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """A JSON error body, ``{"error": message}`` (KServe v2's error shape), straight on the ASGI channel."""
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: auth, in-flight cap, timeout, access log, request metrics."""

    def __init__(self, app: Any, settings: Settings, metrics: Metrics):
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.token = f"Bearer {settings.token}".encode() if settings.token else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        state = {"status": 0, "bytes": 0,
                 "body_done": scope["method"] in ("GET", "HEAD") or headers.get(b"content-length") == b"0"}  # fmt: skip

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
            await send(message)

        async def receiving() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                state["body_done"] = True
            return message

        try:
            await self._guarded(scope, headers, receiving, sending, state)
        finally:
            seconds = time.perf_counter() - started
            match = _MODEL.match(scope["path"])
            model = match.group(1) if match else ""
            route = scope["path"].rsplit("/", 1)[-1] if match else scope["path"]
            self.metrics.request(model, route if match else "other", state["status"] or 499, seconds)
            self._log(scope, state, seconds, model)

    async def _guarded(self, scope: dict[str, Any], headers: dict[bytes, bytes], receive: Any, send: Any,
                       state: dict[str, Any]) -> None:  # fmt: skip
        s = self.settings
        if self.token is not None and scope["path"] not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.token):
                why = "missing" if not given else "wrong"
                return await send_json(send, 401, f"the bearer token is {why}; send 'Authorization: Bearer <token>'",
                                       {"www-authenticate": "Bearer"})  # fmt: skip
        if self.metrics.inflight >= s.max_inflight:
            return await send_json(send, 429, f"{s.max_inflight} requests are in flight already; "
                                              f"retry after {s.retry_after} s",
                                   {"retry-after": str(s.retry_after)})  # fmt: skip
        self.metrics.inflight += 1
        try:
            async with asyncio.timeout(s.timeout):
                await self.app(scope, receive, send)
        except TimeoutError:
            if state["status"]:
                return  # the response had begun: nothing more can be said on this connection
            if not state["body_done"]:
                await send_json(send, 408, f"the request body did not arrive within {s.timeout:g} s")
            else:
                await send_json(send, 504, f"the request did not finish within {s.timeout:g} s; retry later",
                                {"retry-after": str(s.retry_after)})  # fmt: skip
        finally:
            self.metrics.inflight -= 1

    def _log(self, scope: dict[str, Any], state: dict[str, Any], seconds: float, model: str) -> None:
        if not ACCESS.isEnabledFor(logging.INFO):
            return
        client = scope.get("client") or ("-", 0)
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope["path"] + (f"?{query}" if query else "")
        status = state["status"] or 499  # 499: the client went away before an answer
        if self.settings.log_format == "json":
            line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "client": f"{client[0]}:{client[1]}",
                               "method": scope["method"], "path": path, "status": status, "bytes": state["bytes"],
                               "ms": round(seconds * 1000, 2), "model": model or None})  # fmt: skip
        else:
            line = (f'{client[0]}:{client[1]} "{scope["method"]} {path} HTTP/{scope.get("http_version", "1.1")}" '
                    f"{status} {state['bytes']}B {seconds * 1000:.1f}ms")  # fmt: skip
        ACCESS.info(line)
