"""What a ``zoo serve`` process is asked to do: which models, how they run, and every limit, in one frozen object.

The object is plain data (picklable), so Ray Serve replicas receive the same settings the local server runs with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

MiB = 1 << 20


def default_workers() -> int:
    """Threads that decode, preprocess and encode beside inference: one per core (inference has its own thread)."""
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    """One server's models and limits (``zoo serve --help`` documents each as an option)."""

    models: tuple[str, ...]  # registry names, served as /v2/models/<name>
    backend: str | None = None  # None: the model's tuned choice, else onnx
    precision: str | None = None  # None: the tuned choice, else fp32
    device: str = "cpu"  # cpu or gpu (gpu fails rather than fall back)
    threads: int | None = None  # inference threads per instance (None: the cores split between the instances)
    instances: int = 0  # sessions per model inferring at once (0: one per core, at most 4; 1 on gpu)
    max_batch: int = 4  # requests run as one batch at most (1: no batching)
    max_wait_ms: float = 2.0  # how long the first request of a batch waits for others
    queue: int = 32  # requests waiting for inference per model; beyond it: 503 + Retry-After
    max_inflight: int = 64  # requests being handled at once (body included); beyond it: 429 + Retry-After
    max_body: int = 64 * MiB  # request body bytes; beyond it: 413 (before the body is read, when declared)
    timeout: float = 30.0  # seconds a request may take, body included; then 408 (body still coming) or 504
    header_timeout: float = 10.0  # seconds a connection may take to send a request's headers; then 408
    workers: int = 0  # decode/preprocess/encode threads (0: one per core)
    token: str | None = field(default=None, repr=False)  # bearer token all but the health checks need; None: no auth
    log_format: str = "text"  # access log: one line per request, "text" or "json"
    retry_after: int = 1  # seconds clients are told to wait on 429/503

    def pool_size(self) -> int:
        return self.workers or default_workers()

    def layout(self) -> tuple[int, int | None]:
        """(sessions per model, threads per session). On CPU, by default one single-threaded session per core (at
        most 4): on a machine others share, one 2-thread session waits for its slower thread at every layer, two
        1-thread sessions do not (BENCHMARKS.md, section 12)."""
        cores = default_workers()
        if self.device != "cpu":
            return max(1, self.instances or 1), self.threads
        instances = self.instances or max(1, min(4, cores // (self.threads or 1)))
        return instances, self.threads or max(1, cores // instances)
