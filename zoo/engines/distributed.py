"""The Ray engine: `zoo run` and `zoo eval` on a Ray cluster, through Ray Data's batch-inference idiom.

The model is resolved and integrity-checked on the driver (the cache manifest's sha256, as ``zoo run`` does), then
shipped by reference — its bytes in Ray's object store (default) or a path on a shared filesystem — with the expected
sha256. Each worker is a Ray actor (``map_batches`` with a callable class, a fixed pool of ``workers`` actors of
``threads_per_worker`` CPUs each) that re-hashes what it received before its ONNX Runtime session opens, and refuses a
mismatch; a worker never downloads or converts. Per image it runs zoo/engines/segment.py's own write function, so the outputs
are the local engine's, file for file. A bad image becomes an error row; the run goes on.

Resuming: ``<stem>.json`` is written last, and a worker deletes an old one before rewriting an image's outputs, so an
image counts as done only when its JSON parses, names the same input and every output it lists exists.

Inputs are local files, folders and globs, or (with fsspec) URIs: ``s3://``, ``gs://``, ``file://`` ... are read by the
workers; ``memory://`` lives in one process only, so the driver reads those bytes into the dataset.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.engines import sources
from zoo.errors import BackendError, EngineError, ImageError, IntegrityError, ZooError
from zoo.engines.sources import INSTALL

if TYPE_CHECKING:
    import ray.data

    from zoo.runners.runtime import Model
    from zoo.engines.segment import Result
    from zoo.registry.spec import Architecture

DRIVER_READ = ("memory",)  # fsspec protocols whose files exist only in the driver's process
SHIP = ("object", "path")


# ---- the model, by reference ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShippedModel:
    """A model verified on the driver, as workers receive it: where it is, what it must hash to, how to run it."""

    name: str  # registry name or file name (as zoo run's JSON reports it)
    source: str  # the driver's path of the .onnx file (reported as model_path)
    sha256: str  # 'sha256:<hex>' from the cache manifest (or the driver's hash of a bare .onnx file)
    size: int  # bytes
    architecture: Architecture  # preprocessing, labels, palette
    num_classes: int  # classes the model predicts
    device: str = "cpu"  # what each worker's session runs on
    threads: int = 1  # intra-op threads per worker
    blob: Any = None  # ray.ObjectRef of the file's bytes, or None: workers read `source` (a shared filesystem)

    def open(self) -> Model:
        """On a worker: fetch and re-hash the model, then open its session. IntegrityError if it does not match."""
        from zoo.registry import backends
        from zoo.store import cache
        from zoo.runners.runtime import Model

        if self.blob is None:
            local = Path(self.source)
            if not local.is_file():
                raise BackendError(f"{local}: the model file is not on this worker; share it, or ship it with "
                                   "the object store (ship='object')")  # fmt: skip
        else:
            import ray

            data = ray.get(self.blob)
            got = cache.sha256_bytes(data)
            if got != self.sha256:
                raise IntegrityError(f"{self.name}: the model bytes this worker received hash to {got}, expected "
                                     f"{self.sha256}; refused — run again, or 'zoo verify {self.name}'")  # fmt: skip
            local = _node_copy(data, self.sha256)
        got = cache.sha256_file(local)  # the file the session opens, hashed right before it opens
        if got != self.sha256:
            fix = f"run 'zoo convert {self.name} --force' (or 'zoo verify {self.name}')" if self.blob is None else \
                "run again"
            raise IntegrityError(f"{local} on this worker is corrupt: expected {self.sha256}, got {got}; refused — "
                                 f"{fix}")  # fmt: skip
        spec = backends.get("onnx")  # the runner zoo run uses locally, so the outputs are the same file for file
        runner = backends.open_runner(spec, local, device=self.device, threads=self.threads)
        return Model(self.name, Path(self.source), runner, self.architecture, self.num_classes, spec.name, "fp32",
                     self.device, runner.describe())  # fmt: skip


def _node_copy(data: bytes, sha256: str) -> Path:
    """The shipped model as a file on this node (one per content hash, written atomically, shared by its actors)."""
    import tempfile

    from zoo.store import cache

    path = Path(tempfile.gettempdir()) / f"zoo-ray-{os.getuid()}" / f"{cache.hex_of(sha256)}.onnx"
    if not path.is_file() or cache.sha256_file(path) != sha256:  # absent, or damaged since an earlier run wrote it
        cache.atomic_write(path, data)
    return path


def resolve_model(name_or_path: str | os.PathLike[str], *, device: str = "cpu", threads: int = 1,
                  ship: str = "object", precision: str = "fp32") -> ShippedModel:  # fmt: skip
    """Resolve and verify a model on the driver (as ``zoo run`` loads it) into a handle for the workers.

    ``ship="object"`` puts the file's bytes into Ray's object store (Ray must be initialised); ``"path"`` sends only
    the path, for clusters whose nodes share the filesystem.
    """
    from zoo.registry import backends
    from zoo.runners import runtime
    from zoo.store import cache

    if ship not in SHIP:
        raise EngineError(f"unknown ship mode '{ship}'; choose one of: {', '.join(SHIP)}")
    devices = backends.get("onnx").devices
    if device not in devices:
        raise BackendError(f"unknown device '{device}'; choose one of: {', '.join(devices)}")
    # the driver only verifies and reads metadata (on its CPU); the workers run the model on `device`
    model = runtime.load(name_or_path, backend="onnx", device="cpu", threads=1, precision=precision)  # its variant file
    source = Path(model.source)
    expected = None
    if (source.parent / cache.MANIFEST).is_file():  # a cache entry: runtime.load has just checked it against this
        expected = cache.read_manifest(source.parent).get("files", {}).get(source.name, {}).get("sha256")
    expected = expected or cache.sha256_file(source)
    blob = None
    if ship == "object":
        import ray

        data = source.read_bytes()
        if cache.sha256_bytes(data) != expected:  # changed since it was verified
            raise IntegrityError(f"{source} changed while zoo was reading it: expected {expected}; run again")
        blob = ray.put(data)
    return ShippedModel(model.name, str(source), expected, source.stat().st_size, model.architecture,
                       model.num_classes, device, int(threads), blob)  # fmt: skip


@dataclass
class Plan:
    """What a run will do: one row per image to segment, and the images whose outputs are already complete."""

    todo: list[dict[str, Any]]  # {"index", "input", "stem", "inline", "data"}: data = the bytes read here, if inline
    done: list[str] = field(default_factory=list)  # inputs skipped by resume
    total: int = 0  # inputs after expansion


def plan(inputs: Sequence[str | os.PathLike[str]], out: Path, *, resume: bool = True) -> Plan:
    """Expand the inputs, name their outputs as the local engine does, and (resume) leave out completed images."""
    from zoo.engines import segment

    target = Path(out).resolve()
    def earlier_result(name: str) -> bool:  # zoo's own outputs, when a run reads the folder it writes into
        return name.endswith(segment.OUTPUT_SUFFIXES) and Path(name).resolve().parent == target

    names = [n for n in sources.expand(inputs) if sources.is_uri(n) or not earlier_result(n)]
    if not names:
        raise ImageError(f"the inputs are all results of an earlier 'zoo run' in {out}; give the original images")
    keys = [Path(n) for n in names]
    stems = segment.output_stems(keys)
    result = Plan([], [], len(names))
    for index, (name, key) in enumerate(zip(names, keys)):
        stem = stems[key]
        if resume and _complete(Path(out), stem, name):
            result.done.append(name)
            continue
        data = _read_on_driver(name)  # (no None in a column: Ray's numpy batches would turn it into NaN)
        row = {"index": index, "input": name, "stem": stem, "inline": data is not None, "data": data or b""}
        result.todo.append(row)
    return result


def _read_on_driver(name: str) -> bytes | None:
    if not sources.is_uri(name) or name.split("://", 1)[0] not in DRIVER_READ:
        return None
    try:
        return sources.read_bytes(name)
    except ImageError:
        return b""  # the worker reports the empty file as this input's error


def _complete(out: Path, stem: str, name: str) -> bool:
    """Whether an image's outputs are all there: its JSON (written last) parses, names it, lists files that exist."""
    try:
        summary = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
        return summary.get("input") == name and all(Path(p).is_file() for p in summary["outputs"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


# ---- the workers ----------------------------------------------------------------------------------------------------


class Segmenter:
    """One Ray actor: a verified model's session, built once; segments batches of rows into ``out``."""

    def __init__(self, handle: ShippedModel, out: str):
        self.model = handle.open()
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        rows: dict[str, list[Any]] = {"index": [], "input": [], "summary": [], "error": []}
        for index, name, stem, inline, data in zip(batch["index"], batch["input"], batch["stem"], batch["inline"],
                                                   batch["data"]):  # fmt: skip
            summary, error = self._one(str(name), str(stem), bytes(data) if inline else None)
            rows["index"].append(int(index))
            rows["input"].append(str(name))
            rows["summary"].append(json.dumps(summary) if summary is not None else "")
            rows["error"].append(error or "")
        return rows

    def _one(self, name: str, stem: str, data: bytes | None) -> tuple[dict[str, Any] | None, str | None]:
        from zoo.engines import segment

        try:
            started = time.perf_counter()
            decoded = sources.decode(name, data)
            read_ms = _ms(started)
            started = time.perf_counter()
            x = self.model.prepare(decoded.rgb)
            item = segment.Prepared(name, decoded.rgb, x, decoded.notes,  # type: ignore[arg-type]
                                    {"read": read_ms, "preprocess": _ms(started)})  # fmt: skip
            started = time.perf_counter()
            output = self.model.infer(x)
            item.ms["inference"] = _ms(started)
        except ZooError as exc:
            return None, str(exc)
        try:
            (self.out / f"{stem}.json").unlink(missing_ok=True)  # no stale completion marker while files are rewritten
            return segment.write_outputs(self.model, item, output, self.out, stem), None
        except ZooError as exc:
            return None, str(exc)
        except OSError as exc:
            return None, f"{name}: cannot write the results: {exc}"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


# ---- the driver -----------------------------------------------------------------------------------------------------


def connect(address: str | None = None, *, quiet: bool = True) -> bool:
    """Join (``address``: "auto", "ray://HOST:PORT") or start a local Ray; True if this call started it."""
    from zoo import config

    try:
        import ray
    except ImportError:
        raise EngineError(f"--engine ray needs Ray, which is not installed; run: {INSTALL}") from None
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, logging_level="ERROR",
                 log_to_driver=not quiet or config.debug())  # workers' own output only when debugging
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local cluster"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EngineError(f"cannot connect to Ray at {where}: {first}; start it with 'ray start --head', "
                          "or leave out --address for a local one") from None  # fmt: skip
    _quiet_data()
    return True


def _quiet_data() -> None:
    """zoo prints its own progress (images/s) and errors on the driver; Ray Data's bars and INFO lines would repeat."""
    import logging

    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _dataset(handle: ShippedModel, rows: list[dict[str, Any]], out: Path, *, workers: int,
             batch_size: int) -> ray.data.Dataset:  # fmt: skip
    import ray.data

    _quiet_data()
    blocks = max(1, min(len(rows), -(-len(rows) // batch_size)))  # about one block per batch
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    return ds.map_batches(
        Segmenter,
        fn_constructor_kwargs={"handle": handle, "out": str(out)},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        **_resources(handle),
    )


def _resources(handle: ShippedModel) -> dict[str, float]:
    """What one actor reserves: its session's threads as CPUs (so Ray never oversubscribes a node), and a GPU."""
    import ray

    if handle.device == "gpu" and ray.cluster_resources().get("GPU", 0) < 1:  # the actors would wait forever
        raise EngineError("--device gpu: the Ray cluster has no GPU ('ray status' lists its resources); "
                          "add GPU nodes, or run with --device cpu")  # fmt: skip
    return {"num_cpus": handle.threads, **({"num_gpus": 1} if handle.device == "gpu" else {})}


def segment(model_handle_or_name: ShippedModel | str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]],
            out: str | os.PathLike[str], *, address: str | None = None, workers: int = 2, batch_size: int = 8,
            threads_per_worker: int = 1, resume: bool = True, ship: str = "object") -> ray.data.Dataset:  # fmt: skip
    """A Ray Dataset that segments ``inputs`` into ``out`` when consumed: rows ``index, input, summary (JSON), error``.

    The images whose outputs are complete in ``out`` are left out (``resume``). Compose it further, or consume it
    (``.materialize()``, ``.iter_rows()``); :func:`run` does that with progress for the CLI.
    """
    connect(address)
    handle = _handle(model_handle_or_name, threads_per_worker, ship)
    todo = plan(inputs, Path(out), resume=resume).todo
    return _dataset(handle, todo, Path(out), workers=workers, batch_size=batch_size)


def _handle(model: ShippedModel | str | os.PathLike[str], threads: int, ship: str) -> ShippedModel:
    return model if isinstance(model, ShippedModel) else resolve_model(model, threads=threads, ship=ship)


def _check_sizes(workers: int, batch_size: int, threads: int) -> None:
    for flag, value in (("--workers", workers), ("--batch-size", batch_size), ("--threads-per-worker", threads)):
        if value < 1:
            raise EngineError(f"{flag} must be at least 1, got {value}")


@dataclass
class Outcome:
    """What :func:`run` did: per-image results (input order), the inputs skipped as done, the time it took."""

    results: list[Result]  # the images processed this time, in input order
    skipped: list[str]  # complete from an earlier run
    total: int  # inputs after expansion
    seconds: float  # wall time of the processing

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if r.error is not None]


def run(model: ShippedModel | str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]],
        out: str | os.PathLike[str], *, address: str | None = None, workers: int = 2, batch_size: int = 8,
        threads_per_worker: int = 1, resume: bool = True, ship: str = "object",
        on_result: Callable[[Result], None] | None = None,
        progress: Callable[[str], None] | None = None) -> Outcome:  # fmt: skip
    """Segment on Ray and wait: ``on_result`` sees each Result as it arrives, ``progress`` gets images/s lines."""
    from zoo.engines.segment import Result

    _check_sizes(workers, batch_size, threads_per_worker)
    connect(address)
    todo = plan(inputs, Path(out), resume=resume)
    handle = _handle(model, threads_per_worker, ship)
    results: list[Result] = []
    meter = _Meter(len(todo.todo), progress)
    started = time.perf_counter()
    if todo.todo:
        ds = _dataset(handle, todo.todo, Path(out), workers=workers, batch_size=batch_size)
        order = {}
        try:
            for row in ds.iter_rows():
                summary = json.loads(row["summary"]) if row["summary"] else None
                name = row["input"] if sources.is_uri(row["input"]) else Path(row["input"])  # a URI keeps its "//"
                result = Result(name, summary=summary, error=row["error"] or None)  # type: ignore[arg-type]
                order[id(result)] = int(row["index"])
                results.append(result)
                if on_result is not None:
                    on_result(result)
                meter.tick()
        except Exception as exc:  # a worker's refusal arrives wrapped in Ray's own exception types
            raise _zoo_error(exc) from None
        results.sort(key=lambda r: order[id(r)])
    return Outcome(results, todo.done, todo.total, time.perf_counter() - started)


def _zoo_error(exc: BaseException) -> BaseException:
    """The ZooError a worker raised (Ray wraps it in RayTaskError/UserCodeException chains), else an EngineError."""
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ZooError):
            return e
        cause = getattr(e, "cause", None)
        stack += [e.__cause__, e.__context__] + ([cause] if isinstance(cause, BaseException) else [])
    import re

    from zoo import errors

    # an actor's failed __init__ reaches the driver as ActorDiedError, which keeps only the traceback's text
    for line in reversed(str(exc).splitlines()):
        found = re.match(r"\s*zoo\.errors\.(\w+): (.+)$", re.sub(r"\x1b\[[0-9;]*m", "", line))
        cls = getattr(errors, found.group(1), None) if found else None
        if isinstance(cls, type) and issubclass(cls, ZooError) and cls is not errors.RegistryError:
            return cls(found.group(2))  # type: ignore[union-attr]
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return EngineError(f"the Ray job failed: {first}; rerun with ZOO_DEBUG=1 for the workers' traceback")


class _Meter:
    """Images/s on the driver, printed at most every few seconds."""

    def __init__(self, total: int, emit: Callable[[str], None] | None, every: float = 5.0):
        self.total, self.emit, self.every = total, emit, every
        self.done = 0
        self.started = self.last = time.perf_counter()

    def tick(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if self.emit is not None and (now - self.last >= self.every or self.done == self.total):
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            self.emit(f"{self.done}/{self.total} images, {rate:.1f} images/s")


# ---- eval: additive metrics -----------------------------------------------------------------------------------------


class Scorer:
    """One Ray actor for eval: predicts each image and folds ``accumulate(pred, label)`` into one sum per batch."""

    def __init__(self, handle: ShippedModel, accumulate: Callable[[Any, Any], Any],
                 read_label: Callable[[str, tuple[int, int]], Any]):  # fmt: skip
        self.model = handle.open()
        self.accumulate = accumulate
        self.read_label = read_label

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        total, errors, n = None, [], 0
        for image, label in zip(batch["image"], batch["label"]):
            try:
                rgb = sources.decode(str(image), None).rgb
                areas = self.accumulate(self.model.predict(rgb), self.read_label(str(label), rgb.shape[:2]))
            except (ZooError, OSError, ValueError) as exc:  # one bad pair is reported; the others are scored
                errors.append(str(exc) if isinstance(exc, ZooError) else f"{image}: {exc}")
                continue
            total = areas if total is None else add(total, areas)
            n += 1
        return {"sums": [pickle.dumps(total)], "images": [n], "errors": [json.dumps(errors)]}


def add(a: Any, b: Any) -> Any:
    """Element-wise sum of two accumulations: arrays and numbers, or tuples/lists/dicts of them."""
    if isinstance(a, dict):
        return {k: add(a[k], b[k]) for k in a}
    if isinstance(a, (tuple, list)):
        return type(a)(add(x, y) for x, y in zip(a, b))
    return a + b


def score(model: ShippedModel | str | os.PathLike[str], pairs: Sequence[tuple[str, str]],
          accumulate: Callable[[Any, Any], Any], *,
          read_label: Callable[[str, tuple[int, int]], Any] = sources.read_label,
          address: str | None = None, workers: int = 2, batch_size: int = 8, threads_per_worker: int = 1,
          ship: str = "object") -> tuple[Any, int, list[str]]:  # fmt: skip
    """Sum ``accumulate(prediction, label)`` over (image, label) pairs on Ray: per batch on the workers, then here.

    For additive metrics (confusion areas), the sum equals the local one exactly. Returns (sum, images scored,
    error messages of the pairs that failed). ``accumulate(pred, label)`` and ``read_label(name, (H, W))`` run on the
    workers, so they must be picklable (module functions, functools.partial, closures).
    """
    import ray.data

    _check_sizes(workers, batch_size, threads_per_worker)
    connect(address)
    handle = _handle(model, threads_per_worker, ship)
    rows = [{"image": str(i), "label": str(lab)} for i, lab in pairs]
    if not rows:
        raise ImageError("no (image, label) pairs to score")
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), -(-len(rows) // batch_size))))
    ds = ds.map_batches(Scorer, fn_constructor_kwargs={"handle": handle, "accumulate": accumulate,
                                                       "read_label": read_label},
                        batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
                        **_resources(handle))  # fmt: skip
    total, n, errors = None, 0, []
    try:
        for row in ds.iter_rows():
            part = pickle.loads(row["sums"])
            if part is not None:
                total = part if total is None else add(total, part)
            n += int(row["images"])
            errors += json.loads(row["errors"])
    except Exception as exc:
        raise _zoo_error(exc) from None
    return total, n, errors

