"""zoo serve: cached models behind the KServe v2 inference protocol (zoo/serve/), on uvicorn or on Ray Serve."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from zoo.cli._app import app, backend_name, info


class Engine(str, Enum):
    local = "local"
    ray = "ray"


class LogFormat(str, Enum):
    text = "text"
    json = "json"


@app.command()
def serve(
    names: list[str] = typer.Argument(..., metavar="NAME...", help="Cached registry models to serve (see 'zoo list')."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to listen on (0: any free one, printed)."),
    backend: Optional[str] = typer.Option(None, "--backend", metavar="NAME", parser=backend_name,  # noqa: UP007
                                          help="Inference backend (default: the model's tuned one, else onnx)."),
    precision: Optional[str] = typer.Option(None, "--precision", metavar="fp32|bf16|fp16|int8",  # noqa: UP007
                                            help="Precision (default: the model's tuned one, else fp32)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1,  # noqa: UP007
                                          help="Inference threads per instance (default: cores / instances)."),
    instances: int = typer.Option(0, "--instances", min=0,
                                  help="Sessions per model inferring at once (0: one per core, at most 4)."),
    max_batch: int = typer.Option(4, "--max-batch", min=1, help="Requests inferred together at most (1: no batching)."),
    max_wait_ms: float = typer.Option(2.0, "--max-wait-ms", min=0, help="How long a batch waits to fill, in ms."),
    queue: int = typer.Option(32, "--queue", min=1, help="Requests waiting per model; beyond: 503 + Retry-After."),
    max_inflight: int = typer.Option(64, "--max-inflight", min=1,
                                     help="Requests handled at once; beyond: 429 + Retry-After."),
    max_body_mb: float = typer.Option(64.0, "--max-body-mb", min=0.001, help="Largest request body, MiB (413)."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds per request, body included (408/504)."),
    header_timeout: float = typer.Option(10.0, "--header-timeout", min=0.1,
                                         help="Seconds a client may take to send its headers (408)."),
    workers: int = typer.Option(0, "--workers", min=0, help="Decode/encode threads (0: one per core)."),
    token: Optional[str] = typer.Option(None, "--token", help="Bearer token required (default: ZOO_SERVE_TOKEN)."),  # noqa: UP007
    ssl_certfile: Optional[Path] = typer.Option(None, "--ssl-certfile", help="TLS certificate (PEM)."),  # noqa: UP007
    ssl_keyfile: Optional[Path] = typer.Option(None, "--ssl-keyfile", help="TLS private key (PEM)."),  # noqa: UP007
    log_format: LogFormat = typer.Option(LogFormat.text, "--log-format", help="Access log lines: text or json."),
    engine: Engine = typer.Option(Engine.local, "--engine", help="local (uvicorn), or ray: a Ray Serve deployment."),
    replicas: int = typer.Option(1, "--replicas", min=1, help="ray: replicas of the deployment."),
    max_replicas: Optional[int] = typer.Option(None, "--max-replicas", min=1,  # noqa: UP007
                                               help="ray: autoscale between --replicas and this."),
    address: Optional[str] = typer.Option(None, "--address", help="ray: 'auto' or ray://HOST:PORT (default: local)."),  # noqa: UP007
) -> None:
    """Serve cached models over HTTP: KServe v2 (/v2/models/NAME/infer) and POST /v1/models/NAME/segment.

    Only cached models are served (ZOO_OFFLINE=1 works); a missing one is an error naming the command that fetches it.
    """
    from zoo import config
    from zoo.serve import require
    from zoo.serve.settings import MiB, Settings

    require()
    settings = Settings(models=tuple(dict.fromkeys(names)), backend=backend, precision=precision, threads=threads,
                        instances=instances,
                        max_batch=max_batch, max_wait_ms=max_wait_ms, queue=queue, max_inflight=max_inflight,
                        max_body=int(max_body_mb * MiB), timeout=timeout, header_timeout=header_timeout,
                        workers=workers, token=token or config.serve_token(), log_format=log_format.value)  # fmt: skip
    if engine is Engine.ray:
        from zoo.errors import ServeError
        from zoo.serve import ray_serve

        if ssl_certfile or ssl_keyfile:  # Ray Serve's proxy takes no TLS files from zoo
            raise ServeError("--ssl-certfile/--ssl-keyfile work with --engine local only; with --engine ray, put a "
                             "TLS-terminating proxy in front of Ray Serve's port")  # fmt: skip

        ray_serve.run(settings, host=host, port=port, replicas=replicas, max_replicas=max_replicas, address=address,
                      announce=info)  # fmt: skip
        return
    from zoo.serve import app as service
    from zoo.serve import http

    info(f"zoo serve: loading {', '.join(settings.models)} ...")
    loaded = service.load_models(settings)
    for name, (sessions, seconds) in loaded.items():
        model = sessions[0]
        info(f"  {name}: {model.architecture.name} on {model.backend} ({model.precision}), {len(sessions)} "
             f"session(s) x {model.threads} thread(s), loaded in {seconds:.1f} s")
    stopped = http.run(service.build_app(settings, loaded), settings, host=host, port=port,
                       ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                       ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None, announce=info)  # fmt: skip
    info("zoo serve: stopped; every accepted request was answered")
    if stopped == 2:  # Ctrl-C: zoo's usual 130, after the same graceful stop
        raise typer.Exit(130)
