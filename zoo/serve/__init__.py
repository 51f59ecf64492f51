"""``zoo serve``: cached models behind the KServe v2 inference protocol, on uvicorn or as a Ray Serve deployment.

One app, two ways to run it (STYLE.md 18):

* :mod:`zoo.serve.settings` — what a server is asked to do (models, limits, batching), one frozen dataclass;
* :mod:`zoo.serve.app` — the Starlette app factory; models load in its lifespan, handlers stay thin;
* :mod:`zoo.serve.work` — the per-request steps, with zoo run's own decoding, preprocessing and PNG writing;
* :mod:`zoo.serve.batching` — dynamic batching on a bounded queue, inference off the event loop;
* :mod:`zoo.serve.protocol` — KServe v2 (JSON and the binary-tensor extension tritonclient speaks);
* :mod:`zoo.serve.guard` — auth, in-flight cap, per-request timeout, access log and metrics around every request;
* :mod:`zoo.serve.metrics` — the Prometheus text for ``GET /metrics``;
* :mod:`zoo.serve.http` — uvicorn with a header timeout, graceful SIGTERM; :mod:`zoo.serve.ray_serve` — Ray Serve.
"""

from __future__ import annotations

INSTALL = "pip install 'zoo[serve]'"  # what a machine without the extra needs


def require() -> None:
    """A ServeError naming the extra to install when Starlette or uvicorn is missing (checked before models load)."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        from zoo.errors import ServeError

        raise ServeError(f"zoo serve needs the 'serve' extra ({exc.name or exc} is not installed); run: {INSTALL}"
                         ) from None  # fmt: skip
