"""``zoo eval --engine ray``: the local engine's evaluation with its per-image step on Ray actors.

The driver does what the local engine does before and after inference, through the same
:class:`zoo.measure.evaluation.Tally`: the options and the label pre-checks, one column per backend and precision,
``--skip-bad``, the worst images for ``--report``, the result and its JSON. Each actor opens the shipped models once
(zoo/engines/shipping.py) and runs :func:`~zoo.measure.evaluation.load_sample` and
:func:`~zoo.measure.evaluation.score_image` — the local engine's own per-image functions, every inference mode
included — on its rows. Per-class areas and confusion matrices are integers, so the sums equal the local engine's
exactly; the timings and the ``engine`` field are what differ.
"""

from __future__ import annotations

import os
import pickle
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.engines import ray_cluster, shipping
from zoo.engines.ray_cluster import RayOptions

if TYPE_CHECKING:
    import numpy as np

    from zoo.measure.datasets import Dataset
    from zoo.measure.evaluation import EvalResult, Options
    from zoo.registry.catalog import ModelHandle


class Evaluator:
    """One Ray actor: the shipped models' sessions, built once; scores rows ``index, image, label``."""

    def __init__(self, handles: list[shipping.ShippedModel], options: Options, num_classes: int, keep_preds: bool,
                 cwd: str = ""):  # fmt: skip
        ray_cluster.enter(cwd)
        self.models = [h.open() for h in handles]
        self.options, self.num_classes, self.keep_preds = options, num_classes, keep_preds

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        from zoo.measure import evaluation
        from zoo.measure.datasets import Sample

        rows: dict[str, list[Any]] = {"index": [], "record": []}
        for index, image, label in zip(batch["index"], batch["image"], batch["label"]):
            item = evaluation.load_sample(Sample(Path(str(image)), Path(str(label))), self.models, self.options)
            if item.error is not None:
                record: dict[str, Any] = {"error": item.error}
            else:
                scores = evaluation.score_image(self.models, item, self.options, self.num_classes)
                record = {"areas": [s.areas for s in scores], "seconds": [s.seconds for s in scores],
                          "confusion": [s.confusion for s in scores],  # sparse: a few cells per image
                          "preds": [pack(s.pred) if self.keep_preds else None for s in scores],
                          "ran": [evaluation.ran(m) for m in self.models], "unknown": item.unknown}  # fmt: skip
            rows["index"].append(int(index))
            rows["record"].append(pickle.dumps(record))
        return rows


def pack(labels: np.ndarray) -> tuple[bytes, tuple[int, ...], str]:
    """A label map for the trip to the driver: long runs of the same id, so zlib makes it small."""
    return zlib.compress(labels.tobytes(), 1), labels.shape, labels.dtype.str


def unpack(packed: tuple[bytes, tuple[int, ...], str] | None) -> np.ndarray | None:
    import numpy as np

    if packed is None:
        return None
    data, shape, dtype = packed
    return np.frombuffer(zlib.decompress(data), dtype=np.dtype(dtype)).reshape(shape)


def evaluate(model: str | os.PathLike[str] | ModelHandle, dataset: Dataset, *, backends: Sequence[str] | None = None,
             precisions: Sequence[str] = ("fp32",), device: str = "cpu", options: Options | None = None,
             limit: int | None = None, skip_bad: bool = False, absent: str = "zero", progress: bool = False,
             keep_worst: int = 0, reference_miou: float | None = None, ray: RayOptions | None = None,
             announce: Callable[[str], None] | None = None, chosen: Any = None) -> EvalResult:  # fmt: skip
    """:func:`zoo.measure.evaluation.run` on Ray: the same checks, numbers, skips and worst images.

    ``backends`` default to the Ray engine's default backend; each backend and precision is one column, as locally.
    ``announce`` gets one line saying what runs where, once the models are verified. Ctrl-C returns a partial result.
    ``chosen``: the tuned choice (a Selection) that named the one backend and precision, its runner options included.
    """
    from zoo.make import ensure
    from zoo.measure import evaluation

    ray = ray or RayOptions()
    ray.check()
    ray_cluster.connect(ray.address)
    names = list(backends or [shipping.default_backend()])
    handles = [shipping.resolve_model(ensure.prepare(model, b, p), backend=b, precision=p, device=device,
                                      threads=ray.threads_per_worker, ship=ray.ship, chosen=chosen)
               for b in names for p in precisions]  # fmt: skip  (ensure: the one door into the cache)
    tally = evaluation.Tally(handles, dataset, options=options, limit=limit, skip_bad=skip_bad, absent=absent,
                             progress=progress, keep_worst=keep_worst, reference_miou=reference_miou,
                             engine="ray")  # fmt: skip
    if announce is not None:
        announce(f"evaluating {handles[0].name} on {dataset.describe()}: {len(tally.good) + len(tally.skipped)} "
                 f"image(s), {', '.join(s.key for s in tally.scored)}; on Ray: {ray.workers} worker(s) x "
                 f"{ray.threads_per_worker} thread(s)")  # fmt: skip
    rows = [{"index": i, "image": str(s.image), "label": str(s.label)} for i, s in enumerate(tally.good)]
    checked = len(tally.skipped)  # skipped by the pre-checks; the workers' skips follow them in sample order
    failed: list[tuple[int, str]] = []
    started, interrupted = time.perf_counter(), False
    try:
        if rows:
            kwargs = {"handles": handles, "options": tally.options, "num_classes": tally.num_classes,
                      "keep_preds": keep_worst > 0}  # fmt: skip
            ds = ray_cluster.dataset(handles[0], rows, Evaluator, kwargs, ray)
            with ray_cluster.quiet():
                for row in ds.iter_rows():
                    _count(tally, int(row["index"]), pickle.loads(row["record"]), failed)
    except KeyboardInterrupt:
        interrupted = True
    except Exception as exc:  # noqa: BLE001 - a worker's error arrives wrapped in Ray's own exception types
        raise ray_cluster.zoo_error(exc) from None
    finally:
        tally.bar.close()
    tally.skipped[checked:] = [message for _, message in sorted(failed)]
    return tally.result(time.perf_counter() - started, interrupted)


def _count(tally: Any, index: int, record: dict[str, Any], failed: list[tuple[int, str]]) -> None:
    """One worker row into the tally: a bad sample (skipped or fatal, as locally), or every model's score."""
    from zoo.measure.evaluation import ImageScore

    if "error" in record:
        tally.bad(record["error"])
        failed.append((index, record["error"]))
        return
    for s, said in zip(tally.scored, record["ran"]):
        tally.ran[s.key] = said  # what ran on the workers, not the driver's check
    scores = [ImageScore(unpack(pred), areas, seconds, confusion)  # type: ignore[arg-type]
              for areas, seconds, pred, confusion in zip(record["areas"], record["seconds"], record["preds"],
                                                         record["confusion"])]  # fmt: skip
    tally.add(tally.good[index], scores, order=index, unknown=record.get("unknown"))
