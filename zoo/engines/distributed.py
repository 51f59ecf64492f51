"""The Ray engine for ``zoo run``: segmenting on a Ray cluster through Ray Data's batch-inference idiom.

The model is resolved and verified on the driver and shipped by reference (zoo/engines/shipping.py). Each worker is a
Ray actor (``map_batches`` with a callable class, a fixed pool of ``workers`` actors of ``threads_per_worker`` CPUs
each); per image it runs zoo/engines/segment.py's own steps and write function, so the outputs and the per-image JSON
are the local engine's, file for file. A bad image becomes an error row; the run goes on. ``zoo eval`` on Ray is
zoo/engines/ray_eval.py; :func:`score` here sums any additive metric.

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

from zoo.engines import ray_cluster, sources
from zoo.engines.ray_cluster import RayOptions
from zoo.engines.shipping import ShippedModel, resolve_model
from zoo.errors import ImageError, ZooError

if TYPE_CHECKING:
    import ray.data

    from zoo.engines.segment import Result

DRIVER_READ = ("memory",)  # fsspec protocols whose files exist only in the driver's process


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

    def __init__(self, handle: ShippedModel, out: str, cwd: str = "", legend: bool = True):
        ray_cluster.enter(cwd)
        self.model = handle.open()
        self.legend = legend  # the overlay's legend strip, as the local engine's segment_files(legend=...)
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
            return segment.write_outputs(self.model, item, output, self.out, stem, self.legend), None
        except ZooError as exc:
            return None, str(exc)
        except OSError as exc:
            return None, f"{name}: cannot write the results: {exc}"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


# ---- the driver -----------------------------------------------------------------------------------------------------


def segment(model_handle_or_name: ShippedModel | str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]],
            out: str | os.PathLike[str], *, address: str | None = None, workers: int = 2, batch_size: int = 8,
            threads_per_worker: int = 1, resume: bool = True, ship: str = "object",
            legend: bool = True) -> ray.data.Dataset:  # fmt: skip
    """A Ray Dataset that segments ``inputs`` into ``out`` when consumed: rows ``index, input, summary (JSON), error``.

    The images whose outputs are complete in ``out`` are left out (``resume``). Compose it further, or consume it
    (``.materialize()``, ``.iter_rows()``); :func:`run` does that with progress for the CLI.
    """
    options = RayOptions(address, workers, batch_size, threads_per_worker, ship)
    options.check()
    ray_cluster.connect(address)
    handle = _handle(model_handle_or_name, options)
    todo = plan(inputs, Path(out), resume=resume).todo
    return ray_cluster.dataset(handle, todo, Segmenter, {"handle": handle, "out": str(out), "legend": legend}, options)


def _handle(model: ShippedModel | str | os.PathLike[str], options: RayOptions) -> ShippedModel:
    if isinstance(model, ShippedModel):
        return model
    from zoo.make import ensure

    target = ensure.prepare(model, None)  # a registry name's default artifact brought into the cache, as zoo.load does
    return resolve_model(target, threads=options.threads_per_worker, ship=options.ship)


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
        threads_per_worker: int = 1, resume: bool = True, ship: str = "object", legend: bool = True,
        on_result: Callable[[Result], None] | None = None,
        progress: Callable[[str], None] | None = None) -> Outcome:  # fmt: skip
    """Segment on Ray and wait: ``on_result`` sees each Result as it arrives, ``progress`` gets images/s lines."""
    from zoo.engines.segment import Result

    options = RayOptions(address, workers, batch_size, threads_per_worker, ship)
    options.check()
    ray_cluster.connect(address)
    todo = plan(inputs, Path(out), resume=resume)
    handle = _handle(model, options)
    results: list[Result] = []
    started = time.perf_counter()
    if todo.todo:
        kwargs = {"handle": handle, "out": str(out), "legend": legend}
        ds = ray_cluster.dataset(handle, todo.todo, Segmenter, kwargs, options)
        order = {}
        meter = ray_cluster.Meter(len(todo.todo), progress)  # a bar on a terminal: closed below
        try:
            with ray_cluster.quiet():
                for row in ds.iter_rows():
                    summary = json.loads(row["summary"]) if row["summary"] else None
                    name = row["input"] if sources.is_uri(row["input"]) else Path(row["input"])  # a URI keeps "//"
                    result = Result(name, summary=summary, error=row["error"] or None)  # type: ignore[arg-type]
                    order[id(result)] = int(row["index"])
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
                    meter.tick()
        except Exception as exc:  # a worker's refusal arrives wrapped in Ray's own exception types
            raise ray_cluster.zoo_error(exc) from None
        finally:
            meter.close()
        results.sort(key=lambda r: order[id(r)])
    return Outcome(results, todo.done, todo.total, time.perf_counter() - started)


# ---- any additive metric -----------------------------------------------------------------------------------------


class Scorer:
    """One Ray actor for eval: predicts each image and folds ``accumulate(pred, label)`` into one sum per batch."""

    def __init__(self, handle: ShippedModel, accumulate: Callable[[Any, Any], Any],
                 read_label: Callable[[str, tuple[int, int]], Any], cwd: str = ""):  # fmt: skip
        ray_cluster.enter(cwd)
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
    options = RayOptions(address, workers, batch_size, threads_per_worker, ship)
    options.check()
    ray_cluster.connect(address)
    handle = _handle(model, options)
    rows = [{"image": str(i), "label": str(lab)} for i, lab in pairs]
    if not rows:
        raise ImageError("no (image, label) pairs to score")
    kwargs = {"handle": handle, "accumulate": accumulate, "read_label": read_label}
    ds = ray_cluster.dataset(handle, rows, Scorer, kwargs, options)
    total, n, errors = None, 0, []
    try:
        with ray_cluster.quiet():
            for row in ds.iter_rows():
                part = pickle.loads(row["sums"])
                if part is not None:
                    total = part if total is None else add(total, part)
                n += int(row["images"])
                errors += json.loads(row["errors"])
    except Exception as exc:
        raise ray_cluster.zoo_error(exc) from None
    return total, n, errors
