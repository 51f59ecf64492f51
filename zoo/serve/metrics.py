"""Counters behind ``GET /metrics``, written in Prometheus' text exposition format (version 0.0.4).

Kept in-process and tiny rather than pulling in prometheus_client: a handful of counters, two histograms and gauges.
Everything is updated from the event loop's thread (or under the lock, for the batcher's thread), so reads are safe.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)  # seconds
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Histogram:
    """Cumulative buckets, sum and count, as Prometheus expects them."""

    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        i = next((i for i, b in enumerate(self.buckets) if value <= b), len(self.buckets))
        self.counts[i] += 1
        self.total += value

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        sep = "," if labels else ""
        for bound, count in zip((*map(_number, self.buckets), "+Inf"), self.counts, strict=True):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {running}')
        out.append(f"{name}_sum{{{labels}}} {self.total:.6f}")
        out.append(f"{name}_count{{{labels}}} {running}")
        return out


class Metrics:
    """What ``/metrics`` reports: requests and errors by code, latency, batch sizes, queue depth, model load time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)  # (model or "", path kind, code) → count
        self.latency: dict[str, Histogram] = {}
        self.batches: dict[str, Histogram] = {}
        self.load_seconds: dict[str, float] = {}
        self.queue_depth: dict[str, Callable[[], int]] = {}
        self.inflight = 0

    def request(self, model: str, route: str, code: int, seconds: float) -> None:
        with self.lock:
            self.requests[(model, route, code)] += 1
            self.latency.setdefault(model, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, model: str, size: int) -> None:
        with self.lock:
            self.batches.setdefault(model, Histogram(BATCH_BUCKETS)).observe(size)

    def render(self) -> str:
        """The exposition text."""
        with self.lock:
            lines = ["# HELP zoo_requests_total HTTP requests answered, by model, route and status code.",
                     "# TYPE zoo_requests_total counter"]  # fmt: skip
            for (model, route, code), n in sorted(self.requests.items()):
                lines.append(f'zoo_requests_total{{model="{_esc(model)}",route="{route}",code="{code}"}} {n}')
            lines += ["# HELP zoo_request_errors_total Requests answered with a 4xx or 5xx code, by model and code.",
                      "# TYPE zoo_request_errors_total counter"]  # fmt: skip
            errors: dict[tuple[str, int], int] = defaultdict(int)
            for (model, _route, code), n in self.requests.items():
                if code >= 400:
                    errors[(model, code)] += n
            for (model, code), n in sorted(errors.items()):
                lines.append(f'zoo_request_errors_total{{model="{_esc(model)}",code="{code}"}} {n}')
            lines += ["# HELP zoo_request_seconds Time from the request's arrival to its response, by model.",
                      "# TYPE zoo_request_seconds histogram"]  # fmt: skip
            for model, hist in sorted(self.latency.items()):
                lines += hist.lines("zoo_request_seconds", f'model="{_esc(model)}"')
            lines += ["# HELP zoo_batch_size Requests run together in one inference, by model.",
                      "# TYPE zoo_batch_size histogram"]  # fmt: skip
            for model, hist in sorted(self.batches.items()):
                lines += hist.lines("zoo_batch_size", f'model="{_esc(model)}"')
            lines += ["# HELP zoo_queue_depth Requests waiting for inference, by model.",
                      "# TYPE zoo_queue_depth gauge"]  # fmt: skip
            for model, depth in sorted(self.queue_depth.items()):
                lines.append(f'zoo_queue_depth{{model="{_esc(model)}"}} {depth()}')
            lines += ["# HELP zoo_inflight_requests Requests being handled now.", "# TYPE zoo_inflight_requests gauge",
                      f"zoo_inflight_requests {self.inflight}"]  # fmt: skip
            lines += ["# HELP zoo_model_load_seconds Time the model took to load at start-up.",
                      "# TYPE zoo_model_load_seconds gauge"]  # fmt: skip
            for model, seconds in sorted(self.load_seconds.items()):
                lines.append(f'zoo_model_load_seconds{{model="{_esc(model)}"}} {seconds:.6f}')
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
