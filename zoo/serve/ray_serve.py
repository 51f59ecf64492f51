"""``zoo serve --engine ray``: the same ASGI app as a Ray Serve deployment, on a local Ray or an existing cluster.

Each replica builds the app from the same :class:`~zoo.serve.settings.Settings` (``serve.ingress`` with the app made
on the replica), so its lifespan loads the model from that node's cache and every endpoint, limit and output is the
local server's. Ray Serve's proxy listens on ``--host/--port`` and spreads requests over the replicas; each replica
batches its own requests as the local server does. The models are checked on the driver first, so a missing one is
the same one-line error as without Ray.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from zoo.errors import ServeError
from zoo.serve.settings import Settings

INSTALL = "pip install 'zoo[serve-ray]'"
APP_NAME = "zoo"


def deployment(settings: Settings, *, replicas: int = 1, max_replicas: int | None = None) -> Any:
    """The bound Ray Serve application: ``replicas`` copies of the app (autoscaled up to ``max_replicas``)."""
    from ray import serve

    @serve.ingress()  # no app here: each replica builds its own in __serve_build_asgi_app__
    class ZooServe:
        def __init__(self, settings: Settings):
            self.settings = settings

        def __serve_build_asgi_app__(self) -> Any:
            from zoo.serve.app import build_app
            from zoo.serve.http import configure_logging

            configure_logging()  # the access log goes to the replica's stderr, which Ray keeps in its log files
            return build_app(self.settings)

    options: dict[str, Any] = {"name": "zoo", "ray_actor_options": {"num_cpus": 1},
                               "max_ongoing_requests": settings.max_inflight}  # fmt: skip
    if max_replicas is not None and max_replicas > replicas:
        options["autoscaling_config"] = {"min_replicas": replicas, "max_replicas": max_replicas}
    else:
        options["num_replicas"] = replicas
    return serve.deployment(ZooServe, **options).bind(settings)


def run(settings: Settings, *, host: str, port: int, replicas: int = 1, max_replicas: int | None = None,
        address: str | None = None, announce: Callable[[str], None] | None = None,
        stop: threading.Event | None = None) -> None:  # fmt: skip
    """Deploy and serve until SIGTERM or Ctrl-C (or ``stop`` is set), then shut the deployment down."""
    try:
        from ray import serve
    except ImportError:
        raise ServeError(f"zoo serve --engine ray needs Ray Serve, which is not installed; run: {INSTALL}") from None
    from zoo.engines.ray_cluster import connect
    from zoo.serve.app import check_cached

    if port == 0:
        raise ServeError("--engine ray needs a fixed --port (Ray Serve's proxy cannot pick one and say which)")
    check_cached(settings)  # on the driver: a missing model fails here, not in every replica
    if settings.threads is None and not settings.instances:  # replicas share the machine: split its cores
        settings = replace(settings, instances=1, threads=max(1, (os.cpu_count() or 1) // replicas))
    started = connect(address)  # zoo's one way into Ray: a neutral working folder, Ray's noise kept quiet
    stop = stop or threading.Event()
    saved = {}
    if threading.current_thread() is threading.main_thread():
        saved = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    import logging

    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # zoo says what is served, and where, itself
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(deployment(settings, replicas=replicas, max_replicas=max_replicas), name=APP_NAME, route_prefix="/")
        if announce is not None:
            scale = f"{replicas}-{max_replicas}" if max_replicas and max_replicas > replicas else str(replicas)
            running = serve.status().applications[APP_NAME].deployments["zoo"].replica_states.get("RUNNING", 0)
            announce(f"zoo serve: {', '.join(settings.models)} on http://{host}:{port} (Ray Serve, {scale} "
                     f"replica(s), {running} running); SIGTERM or Ctrl-C stops it")  # fmt: skip
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        serve.shutdown()
        if started:
            import ray

            ray.shutdown()

