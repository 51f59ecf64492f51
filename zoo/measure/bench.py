"""Benchmark a cached model: latency percentiles, throughput, the stage split and peak memory, per backend.

Each backend is measured in its own child process (``python -m zoo.measure.bench``), so no other's libraries, weights
and arenas count towards its peak RSS. The child loads the model with :func:`zoo.runners.runtime.load` — the runners
``zoo run`` uses — and times, per image, the three stages of
:meth:`zoo.runners.runtime.Model.predict` on one synthetic street-like image of the asked size (``zoo.synthetic``):

    preprocess    RGB uint8 → the network's float32 [1, 3, H, W] (``Model.prepare``)
    inference     the runner's ``run(x)`` (``Model.infer``)
    postprocess   the first output → an [H, W] label map (``Model.to_labels``)

Latency is the sum of the three, after ``warmup`` untimed images. Throughput is timed images ÷ their total time.
Peak RSS is the child's own high-water mark (Linux VmHWM): interpreter, libraries, model and activations together.

The JSON shape (``BenchResult.as_dict``)::

    {"model": "bisenet", "size": [H, W], "threads": N, "warmup": N, "runs": N, "device": null, "image": …,
     "backends": {"onnx/fp32": {"backend": "onnx", "precision": "fp32", "device": "cpu", "p50_ms": …, "p90_ms": …,
                                "p99_ms": …, "mean_ms": …, "throughput_ips": …, "preprocess_ms": …, "inference_ms": …,
                                "postprocess_ms": …, "load_ms": …, "peak_rss_mb": …, "providers": [...],
                                "threads": N, "config": {...}, "speedup": …, "agreement": …, …},
                  "paddle/fp32": {…}},
     "reference": "paddle/fp32",
     "ratio": {"of": "onnx/fp32", "over": "paddle/fp32", "p50": …, "inference": …, "throughput": …, "peak_rss": …}}

Rows are keyed ``backend/precision``. Which backends run unnamed, and which row the speed-ups, label agreement and
``ratio`` are against, come from the backend specs (``default`` and ``reference``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import BackendError, ZooError

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle

DEFAULT_SIZE = (512, 1024)  # (H, W): half-resolution Cityscapes, what the registry's models were trained near
DEFAULT_WARMUP = 2
DEFAULT_RUNS = 10
IMAGE_SEED = 0
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BackendStats:
    """One backend's numbers, measured in its own process."""

    backend: str  # the backend's name (what --backend took)
    source: str  # the .onnx file or Paddle model folder that ran
    providers: list[str]  # what actually ran the model (ORT execution providers, or Paddle's CPU/oneDNN path)
    threads: int  # CPU threads the runner was given for one inference
    config: dict[str, Any]  # the runner's describe()["options"]: settings that matter for speed
    runs: int  # timed images
    warmup: int  # untimed images before them
    p50_ms: float  # median per-image latency: preprocess + inference + postprocess
    p90_ms: float  # 90th percentile of the same
    p99_ms: float  # 99th percentile (with few runs, close to the slowest)
    mean_ms: float  # mean latency
    min_ms: float  # fastest image
    throughput_ips: float  # images per second, one after another
    preprocess_ms: float  # median of the preprocess stage
    inference_ms: float  # median of the runner's run(x): the number to compare backends by
    postprocess_ms: float  # median of the postprocess stage
    inference_p90_ms: float  # 90th percentile of run(x)
    load_ms: float  # creating the session or predictor
    rss_after_load_mb: float  # resident set once the model is loaded, before the first image
    peak_rss_mb: float  # the child process's own peak resident set (interpreter, libraries, model, activations)
    precision: str = "fp32"  # the precision that ran, as the backend's describe() reports it (else the one asked for)
    device: str = "cpu"  # where it ran (what the runner was opened with)
    speedup: float | None = None  # the reference row's p50 ÷ this row's (reference: BenchResult.reference)
    agreement: float | None = None  # share of pixels whose label equals the reference row's, on the same image
    tuned: dict[str, Any] | None = None  # the row `zoo run` uses by default, tuned by `zoo tune`: its record's summary


@dataclass(frozen=True)
class BenchResult:
    """Every backend measured for one model, size and thread count."""

    model: str  # registry name
    size: tuple[int, int]  # (H, W) of the synthetic image, and so of the input tensor
    threads: int  # threads asked for
    warmup: int  # untimed images per backend
    runs: int  # timed images per backend
    backends: dict[str, BackendStats] = field(default_factory=dict)  # by "backend/precision", in the order measured
    reference: str | None = None  # the float32 row speed-up and agreement are against: the reference backend's
    device: str | None = None  # the device asked for; None: each backend's first declared device
    pair: tuple[str, str] | None = None  # (default, reference) backend names, as their specs say: the ratio's rows
    failed: dict[str, str] = field(default_factory=dict)  # rows that could not be measured: key → why, what to do

    def compare(self, labels: dict[str, Any], reference: str | None = None) -> BenchResult:
        """Fill in speed-up and label agreement against the float32 row of backend ``reference`` (else the first
        float32 row that ran), given each row's label map of the benchmark image; returns the result with them."""
        import dataclasses

        import numpy as np

        fp32 = [k for k, s in self.backends.items() if s.precision == "fp32" and k in labels]
        ref = f"{reference}/fp32" if f"{reference}/fp32" in fp32 else (fp32[0] if fp32 else None)
        if ref is None or len(self.backends) < 2:
            return self
        base, want = self.backends[ref], labels[ref]
        rows = {}
        for key, stats in self.backends.items():
            got = labels.get(key)
            agree = float(np.mean(got == want)) if got is not None and got.shape == want.shape else None
            rows[key] = dataclasses.replace(stats, speedup=round(base.p50_ms / stats.p50_ms, 3) if stats.p50_ms else None,
                                            agreement=None if agree is None else round(agree, 6))  # fmt: skip
        return dataclasses.replace(self, backends=rows, reference=ref)

    def ratio(self) -> dict[str, Any] | None:
        """The default backend's float32 row ÷ the reference's for time, throughput and memory (below 1: faster or
        smaller than the reference), if both ran."""
        if self.pair is None:
            return None
        of, over = (f"{b}/fp32" for b in self.pair)
        a, b = self.backends.get(of), self.backends.get(over)
        if a is None or b is None or of == over:
            return None

        def div(x: float, y: float) -> float:
            return round(x / y, 3) if y else float("nan")

        return {
            "of": of, "over": over, "p50": div(a.p50_ms, b.p50_ms), "inference": div(a.inference_ms, b.inference_ms),
            "throughput": div(a.throughput_ips, b.throughput_ips), "peak_rss": div(a.peak_rss_mb, b.peak_rss_mb),
        }  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "size": list(self.size), "threads": self.threads, "warmup": self.warmup,
            "runs": self.runs, "device": self.device,
            "image": f"zoo.synthetic.street_scene, seed {IMAGE_SEED}",
            "latency": "preprocess + inference + postprocess, per image, in memory",
            "backends": {name: asdict(stats) for name, stats in self.backends.items()},
            "reference": self.reference,
            "failed": self.failed,
            "ratio": self.ratio(),
        }  # fmt: skip


def bench(
    model: ModelHandle | str,
    *,
    backends: tuple[str, ...] | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
    threads: int | None = None,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    progress: Any = None,
    precisions: tuple[str, ...] = ("fp32",),
    tuned: Any = None,
    device: str | None = None,
) -> BenchResult:
    """Measure ``model`` on each backend, each in a child process, from what is cached (see :func:`runs_of`).

    ``backends`` None: the default backend and the reference one (their specs say which). ``progress``, if given, is
    called with one-line status messages. Each backend runs at each of ``precisions`` it declares (results keyed
    ``backend/precision``), on ``device`` (None: its first declared device). ``tuned``: a
    :class:`zoo.runners.runtime.Selection` from ``zoo tune``, measured first as the row keyed ``tuned`` (its own
    threads and runner options unless ``threads`` is given).
    """
    from zoo.registry import backends as registered, catalog

    pair = (registered.default_backend().name, registered.reference_backend().name)
    jobs = runs_of(backends, precisions)  # BackendError names the registered ones
    if warmup < 0 or runs < 1:
        raise ZooError(f"need warmup >= 0 and runs >= 1, got warmup={warmup}, runs={runs}")
    h, w = size
    if h < 1 or w < 1:
        raise ZooError(f"height and width must be positive, got {h}x{w}")
    asked_threads = threads
    threads = int(threads or os.cpu_count() or 1)
    handle = catalog.handle(model)  # UnknownModelError before anything is started
    name = handle.name
    result = BenchResult(name, (h, w), threads, warmup, runs, device=device, pair=pair)
    labels: dict[str, Any] = {}
    rows = [(f"{s.name}/{p}", s, p, threads, {}) for s, p in jobs]
    if tuned is not None:  # the row `zoo run` uses by default, first
        rows.insert(0, ("tuned", registered.get(tuned.backend), tuned.precision,
                        int(asked_threads or tuned.threads or threads), dict(tuned.options)))  # fmt: skip
    for key, spec, precision, n, options in rows:
        on = device or spec.devices[0]
        if progress:
            what = f"{key} ({tuned.describe()})" if key == "tuned" else key
            progress(f"bench {name}: {what} on {on} at {h}x{w}, {n} threads, {warmup} warm-up + {runs} runs")
        job = {"name": name, "backend": spec.name, "size": [h, w], "threads": n, "warmup": warmup,
               "runs": runs, "precision": precision, "device": on, "options": options,
               "registries": [str(p) for p in catalog.extra_registries()]}  # fmt: skip
        try:
            stats, labels[key] = _in_child(job)
        except ZooError as exc:  # the rows measured so far are kept; this one is marked
            if not result.backends and key == rows[-1][0]:
                raise
            result.failed[key] = failure_advice(name, str(exc))
            if progress:
                progress(f"bench {name}: {key} FAILED: {result.failed[key]}")
            continue
        if key == "tuned":
            stats = dataclasses.replace(stats, tuned=tuned.tuned.as_dict() if tuned.tuned else None)
        result.backends[key] = stats
    if not result.backends:
        raise BackendError(f"no row could be measured: {'; '.join(f'{k}: {v}' for k, v in result.failed.items())}")
    return result.compare(labels, reference=pair[1])


def failure_advice(name: str, message: str) -> str:
    """A failed row's message, with the model's name in the command its backend advises (``zoo export MODEL ...``)."""
    return message.replace("zoo export MODEL", f"zoo export {name}")


def runs_of(backends: tuple[str, ...] | None, precisions: tuple[str, ...]) -> list[tuple[Any, str]]:
    """(backend spec, precision) of every row :func:`bench` measures (``backends`` None: the default and reference
    backends); the caller brings what they run into the cache first (zoo.make.ensure.prepare)."""
    from zoo.registry import backends as registered

    pair = (registered.default_backend().name, registered.reference_backend().name)
    names = tuple(backends) if backends else tuple(dict.fromkeys(pair))
    specs = [registered.get(b) for b in names]
    jobs = [(spec, p) for spec in specs for p in precisions if p in spec.precisions]
    if not jobs:
        raise ZooError(f"none of {', '.join(names)} runs {', '.join(precisions)}; see 'zoo plugins' for what each runs")
    return jobs


def _in_child(job: dict[str, Any]) -> tuple[BackendStats, Any]:
    """Run :func:`measure` in a fresh interpreter; its result (or error) comes back through a JSON file, the label map
    of the benchmark image through an .npy file."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        out = Path(tmp) / "result.json"
        job = {**job, "labels_out": str(Path(tmp) / "labels.npy")}
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
        env.setdefault("GLOG_minloglevel", "2")  # paddle's glog chatter
        proc = subprocess.run([sys.executable, "-m", "zoo.measure.bench", json.dumps(job), str(out)],
                              env=env, capture_output=True, text=True, check=False)  # fmt: skip
        try:
            doc = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:]) or "no output"
            raise BackendError(
                f"the {job['backend']} benchmark process exited {proc.returncode} without a result: {tail}; "
                f"try 'zoo run {job['name']} IMAGE --backend {job['backend']}' to see the failure"
            ) from None
        if "error" in doc:
            raise _rebuild_error(doc["error"])
        return BackendStats(**doc["stats"]), np.load(job["labels_out"], allow_pickle=False)


def _rebuild_error(err: dict[str, str]) -> ZooError:
    from zoo import errors

    cls = getattr(errors, err.get("type", ""), None)
    if isinstance(cls, type) and issubclass(cls, ZooError) and cls is not errors.RegistryError:
        return cls(err.get("message", ""))
    return BackendError(err.get("message", "the benchmark process failed"))


# ---- the child ------------------------------------------------------------------------------------------------------


def synthetic_image(size: tuple[int, int], seed: int = IMAGE_SEED) -> Any:
    """A reproducible RGB uint8 ``[H, W, 3]`` street-like picture (:func:`zoo.synthetic.street_scene`)."""
    from zoo.synthetic import street_scene

    return street_scene(size[0], size[1], seed)


def measure(
    name: str,
    backend: str,
    size: tuple[int, int],
    threads: int,
    warmup: int,
    runs: int,
    precision: str = "fp32",
    labels_out: str | None = None,
    options: dict[str, Any] | None = None,
    device: str = "cpu",
) -> BackendStats:
    """Measure one backend in this process (``bench`` calls this in a child; its RSS covers the whole process).
    ``labels_out``: save the benchmark image's label map there (.npy), for the parent's agreement column."""
    import numpy as np

    from zoo.runners import runtime

    started = time.perf_counter()
    model = runtime.load(name, backend=backend, device=device, threads=threads, precision=precision,
                         options=options or None)
    load_ms = _ms(started)
    rss_loaded = _current_rss_mb()
    rgb = synthetic_image(size)
    hw = (rgb.shape[0], rgb.shape[1])
    stages = np.zeros((warmup + runs, 3))
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        x = model.prepare(rgb)
        t1 = time.perf_counter()
        output = model.infer(x)
        t2 = time.perf_counter()
        labels = model.to_labels(output, hw)
        t3 = time.perf_counter()
        stages[i] = (t1 - t0, t2 - t1, t3 - t2)
    if labels_out:
        np.save(labels_out, labels, allow_pickle=False)
    timed = stages[warmup:] * 1000.0
    total = timed.sum(axis=1)
    p50, p90, p99 = (float(v) for v in np.percentile(total, [50, 90, 99]))
    described = model.runner.describe()  # what actually ran, as the backend reports it
    return BackendStats(
        precision=str(described.get("precision") or precision),
        device=device,
        backend=backend,
        source=str(model.source),
        providers=list(described.get("providers") or [described.get("engine", backend)]),
        threads=int(described.get("threads") or threads),
        config=dict(described.get("options") or {}),
        runs=runs,
        warmup=warmup,
        p50_ms=round(p50, 3),
        p90_ms=round(p90, 3),
        p99_ms=round(p99, 3),
        mean_ms=round(float(total.mean()), 3),
        min_ms=round(float(total.min()), 3),
        throughput_ips=round(runs / (float(total.sum()) / 1000.0), 3),
        preprocess_ms=round(float(np.median(timed[:, 0])), 3),
        inference_ms=round(float(np.median(timed[:, 1])), 3),
        postprocess_ms=round(float(np.median(timed[:, 2])), 3),
        inference_p90_ms=round(float(np.percentile(timed[:, 1], 90)), 3),
        load_ms=round(load_ms, 1),
        rss_after_load_mb=round(rss_loaded, 1),
        peak_rss_mb=round(_peak_rss_mb(), 1),
    )


def _peak_rss_mb() -> float:
    """This process's own peak RSS: Linux's VmHWM, not ``ru_maxrss``, into which the kernel carries the forking
    parent's peak at exec (a child of a large process would report at least the parent's size)."""
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def _current_rss_mb() -> float:
    rss = _proc_status_mb("VmRSS")
    return float("nan") if rss is None else rss


def _proc_status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _child(argv: list[str]) -> int:
    """``python -m zoo.measure.bench JOB_JSON RESULT_PATH``: measure one backend, write ``{"stats"}`` or ``{"error"}``."""
    job, out = json.loads(argv[0]), Path(argv[1])
    try:
        from zoo.registry import catalog

        catalog.use_registries([Path(p) for p in job["registries"]])  # what the parent's --registry gave
        stats = measure(job["name"], job["backend"], tuple(job["size"]), job["threads"], job["warmup"], job["runs"],
                        job.get("precision", "fp32"), job.get("labels_out"), job.get("options"),
                        job.get("device", "cpu"))
        doc: dict[str, Any] = {"stats": asdict(stats)}
    except ZooError as exc:
        doc = {"error": {"type": type(exc).__name__, "message": str(exc)}}
    out.write_text(json.dumps(doc), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
