"""The ASGI app: :func:`build_app` makes it from :class:`~zoo.serve.settings.Settings`; its lifespan loads the models.

Endpoints (KServe v2 REST, plus one plain one):

=====================================================  ==============================================================
``GET  /v2/health/live``, ``/v2/health/ready``         200 once the models are loaded (no token needed)
``GET  /v2``                                           server metadata
``POST /v2/repository/index``                          the models served (Triton's repository extension)
``GET  /v2/models/{name}[/versions/1]``                the model's input and output tensors
``GET  /v2/models/{name}[/versions/1]/ready``          200 when it can infer
``POST /v2/models/{name}[/versions/1]/infer``          :mod:`zoo.serve.protocol`
``POST /v1/models/{name}/segment[?format=...]``        an image file in, zoo run's label PNG out (json|color|overlay)
``GET  /metrics``                                      Prometheus text (:mod:`zoo.serve.metrics`)
=====================================================  ==============================================================

The same app object runs under uvicorn (:mod:`zoo.serve.http`) and as a Ray Serve deployment
(:mod:`zoo.serve.ray_serve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from zoo.errors import RequestError
from zoo.serve import protocol, work
from zoo.serve.batching import Batcher
from zoo.serve.guard import Guard
from zoo.serve.metrics import CONTENT_TYPE, Metrics
from zoo.serve.settings import Settings

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from zoo.registry.catalog import ModelHandle
    from zoo.runners.runtime import Model

SEGMENT_TYPES = ("image/", "application/octet-stream")  # what the plain endpoint takes (or no Content-Type at all)
INFER_TYPES = ("application/json", "application/octet-stream")


@dataclass
class Served:
    """A model being served: the loaded model and its batching queue."""

    model: Model
    batcher: Batcher


class State:
    """What the handlers share: the models, the worker pool, the metrics."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.metrics = Metrics()
        self.models: dict[str, Served] = {}
        self.pool: ThreadPoolExecutor | None = None
        self.ready = False

    def served(self, name: str) -> Served:
        served = self.models.get(name)
        if served is None:
            known = ", ".join(self.models) or "none"
            raise RequestError(404, f"no model '{name}' is served here; served: {known}")
        return served

    async def blocking(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on the worker pool: decoding, preprocessing and encoding never run on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, partial(fn, *args))


def check_cached(settings: Settings) -> dict[str, ModelHandle]:
    """Each model resolved once, with what its backend runs in the cache (converted here if only the Paddle model
    is: that needs no network), or a NotCachedError naming the command that fetches it. Never downloads: zoo serve
    serves what the cache holds (zoo.make.ensure, the one door, with fetching off)."""
    from zoo.errors import NotCachedError
    from zoo.make import ensure
    from zoo.registry import catalog
    from zoo.store import cache

    handles = {}
    for name in settings.models:
        handle = catalog.resolve(name)  # UnknownModelError names 'zoo list'
        if not cache.cached_formats(handle.name):
            pull = ensure.command(f"pull {handle.name}")
            raise NotCachedError(f"model '{handle.name}' is not in the cache ({cache.root()}); zoo serve only serves "
                                 f"cached models: run '{pull}', then 'zoo serve' again")  # fmt: skip
        handles[name] = ensure.prepare(handle, settings.backend, settings.precision or "fp32", fetch=False)
    return handles


def load_models(settings: Settings) -> dict[str, tuple[list[Model], float]]:
    """Each model's sessions (:meth:`Settings.layout`), opened from the cache as ``zoo run`` opens it, with the time
    they took in seconds."""
    from zoo.runners import runtime

    handles = check_cached(settings)
    instances, threads = settings.layout()
    loaded = {}
    for name, handle in handles.items():
        started = time.perf_counter()
        sessions = [runtime.load(handle, backend=settings.backend, precision=settings.precision,
                                 device=settings.device, threads=threads) for _ in range(instances)]  # fmt: skip
        loaded[name] = (sessions, time.perf_counter() - started)
    return loaded


def build_app(settings: Settings, loaded: dict[str, tuple[list[Model], float]] | None = None) -> Any:
    """The Starlette app serving ``settings.models``, wrapped in :class:`~zoo.serve.guard.Guard`.

    ``loaded`` (from :func:`load_models`) lets a caller load the models first, so start-up errors come before the
    socket opens; without it the lifespan loads them (each Ray Serve replica does).
    """
    try:
        from starlette.applications import Starlette
        from starlette.routing import Route
    except ImportError:
        from zoo.errors import ServeError
        from zoo.serve import INSTALL

        raise ServeError(f"zoo serve needs Starlette and uvicorn, which are not installed; run: {INSTALL}") from None

    state = State(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        models = loaded if loaded is not None else await loop.run_in_executor(None, load_models, settings)
        state.pool = ThreadPoolExecutor(settings.pool_size(), thread_name_prefix="zoo-serve")
        for name, (sessions, seconds) in models.items():
            model = sessions[0]  # for preprocessing, labels and colours; every session runs the same file
            runs = [partial(work.infer_batch, session) for session in sessions]
            batcher = Batcher(name, runs, max_batch=settings.max_batch,
                              max_wait=settings.max_wait_ms / 1000.0, queue=settings.queue,
                              retry_after=settings.retry_after,
                              on_batch=partial(state.metrics.batch, name))  # fmt: skip
            batcher.start()
            state.models[name] = Served(model, batcher)
            state.metrics.load_seconds[name] = seconds
            state.metrics.queue_depth[name] = batcher.depth
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            for served in state.models.values():
                await served.batcher.stop()
            state.pool.shutdown(wait=True)

    def route(path: str, fn: Any, methods: tuple[str, ...] = ("GET",)) -> Route:
        return Route(path, partial(_handle, fn, state), methods=list(methods))

    routes = [
        route("/v2", server_metadata),
        route("/v2/health/live", live),
        route("/v2/health/ready", ready),
        route("/v2/repository/index", repository_index, ("POST",)),
        route("/v2/models/{name}", model_metadata),
        route("/v2/models/{name}/versions/{version}", model_metadata),
        route("/v2/models/{name}/ready", model_ready),
        route("/v2/models/{name}/versions/{version}/ready", model_ready),
        route("/v2/models/{name}/infer", infer, ("POST",)),
        route("/v2/models/{name}/versions/{version}/infer", infer, ("POST",)),
        route("/v1/models/{name}/segment", segment, ("POST",)),
        route("/metrics", metrics),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.zoo = state
    return Guard(app, settings, state.metrics)


async def _handle(fn: Any, state: State, request: Request) -> Response:
    """Every handler's errors as KServe's JSON ``{"error": ...}`` with the RequestError's code."""
    from starlette.responses import JSONResponse

    try:
        return await fn(state, request)
    except RequestError as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=exc.headers)


# ---- handlers: read, hand to work/protocol, answer ------------------------------------------------------------------


async def server_metadata(state: State, request: Request) -> Response:
    from importlib.metadata import PackageNotFoundError, version

    from starlette.responses import JSONResponse

    try:
        release = version("zoo")
    except PackageNotFoundError:  # a source tree that was never installed
        release = "0.0.0+unknown"
    return JSONResponse({"name": "zoo", "version": release, "extensions": ["binary_tensor_data", "model_repository"]})


async def live(state: State, request: Request) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse({"live": True})


async def ready(state: State, request: Request) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse({"ready": state.ready}, status_code=200 if state.ready else 503)


async def repository_index(state: State, request: Request) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse([{"name": n, "version": "1", "state": "READY"} for n in state.models])


async def model_metadata(state: State, request: Request) -> Response:
    from starlette.responses import JSONResponse

    served = _served(state, request)
    return JSONResponse(protocol.model_metadata(served.model.name, f"zoo_{served.model.backend}"))


async def model_ready(state: State, request: Request) -> Response:
    from starlette.responses import JSONResponse

    _served(state, request)
    return JSONResponse({"name": request.path_params["name"], "ready": state.ready},
                        status_code=200 if state.ready else 503)  # fmt: skip


async def infer(state: State, request: Request) -> Response:
    from starlette.responses import Response

    served = _served(state, request)
    header_length = request.headers.get(protocol.HEADER_LENGTH)
    if header_length is None:
        _content_type(request, INFER_TYPES, "application/json")
    body = await read_body(request, state.settings.max_body)
    from zoo.images import MAX_PIXELS

    parsed = await state.blocking(protocol.parse_infer, body, header_length, MAX_PIXELS)
    rgb = parsed.rgb if parsed.rgb is not None else await state.blocking(work.decode, parsed.encoded)
    x = await state.blocking(work.prepare, served.model, rgb)
    output = await served.batcher.submit(x)
    results = await state.blocking(work.tensors, served.model, parsed.outputs, rgb.shape[:2], output)
    content, headers = await state.blocking(protocol.infer_response, served.model.name, parsed, results)
    return Response(content, headers=headers)


async def segment(state: State, request: Request) -> Response:
    from starlette.responses import Response

    served = _served(state, request)
    fmt = request.query_params.get("format", "png")
    if fmt not in work.FORMATS:
        raise RequestError(400, f"unknown format '{fmt}'; choose one of: {', '.join(work.FORMATS)}")
    _content_type(request, SEGMENT_TYPES, "image/png")
    body = await read_body(request, state.settings.max_body)
    rgb = await state.blocking(work.decode, body)
    x = await state.blocking(work.prepare, served.model, rgb)
    output = await served.batcher.submit(x)
    content = await state.blocking(work.render, served.model, fmt, rgb, output)
    return Response(content, media_type=work.MEDIA[fmt])


async def metrics(state: State, request: Request) -> Response:
    from starlette.responses import Response

    return Response(state.metrics.render(), headers={"content-type": CONTENT_TYPE})


# ---- request helpers ------------------------------------------------------------------------------------------------


def _served(state: State, request: Request) -> Served:
    version = request.path_params.get("version")
    if version not in (None, "1"):
        raise RequestError(404, f"model '{request.path_params['name']}' has only version 1")
    return state.served(request.path_params["name"])


def _content_type(request: Request, accepted: tuple[str, ...], example: str) -> None:
    given = request.headers.get("content-type")
    if given is None:
        return
    kind = given.split(";", 1)[0].strip().lower()
    if not any(kind.startswith(a) for a in accepted):
        raise RequestError(415, f"Content-Type {kind!r} is not accepted here; send {example} "
                                f"(curl: -H 'Content-Type: {example}')")  # fmt: skip


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is (or says it will be) over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, f"Content-Length must be a number of bytes, got {declared!r}")
        if int(declared) > limit:
            raise RequestError(413, f"the body would be {int(declared)} bytes; this server takes at most {limit} "
                                    "(zoo serve --max-body-mb)")  # fmt: skip
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is over {limit} bytes, the most this server takes "
                                    "(zoo serve --max-body-mb)")  # fmt: skip
        chunks.append(chunk)
    if not size:
        raise RequestError(400, "the request has no body; send the image (or the v2 JSON) as the body")
    return b"".join(chunks)
