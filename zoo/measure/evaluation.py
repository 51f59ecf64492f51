"""Accuracy against ground truth: run one or more loaded models over a labelled data set and score them as PaddleSeg.

One evaluation, whichever engine infers: :class:`Tally` checks the options and every sample's files before any
inference (missing and mis-sized labels are found now, not an hour in), keeps one column of running totals per model,
decides what a bad sample does (``skip_bad``), keeps the worst images for ``--report`` and builds the
:class:`EvalResult`. Per image, :func:`load_sample` decodes the image and its label and :func:`score_image` infers
every model (in PaddleSeg's modes, zoo/measure/inference.py) and counts per-class areas and the confusion matrix
(zoo/measure/metrics.py): the local engine here and the Ray engine's workers (zoo/engines/ray_eval.py) call the same
two functions.

Locally the data flows as in ``zoo run``: reader threads decode and preprocess the next images while the calling
thread infers, so memory holds a few images' maps, never the data set. Ctrl-C stops at the current image and returns
the partial result (``interrupted``).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import DatasetError, EvalError, ImageError
from zoo.measure.inference import MODES, Options, label_conventions, predict  # noqa: F401 - part of this API

if TYPE_CHECKING:
    import numpy as np

    from zoo.measure.datasets import Dataset, Sample
    from zoo.runners.runtime import Model

WORST = 4  # images kept per backend for --report (the lowest per-image mIoU)
READERS = 2  # decode + preprocess threads (as zoo run's local pipeline)
PREFETCH = 3  # samples read ahead of the one being inferred


@dataclass
class Worst:
    """One badly segmented image kept for the report (``rgb``/``label`` are read again when an engine did not keep
    them: :meth:`Tally.result` fills them in)."""

    score: float  # the image's own mIoU (classes present in it or its prediction)
    image: Path
    rgb: np.ndarray | None
    pred: np.ndarray
    label: np.ndarray | None
    sample: Sample | None = None


@dataclass
class Scored:
    """One model's running totals."""

    key: str  # its column: backend[/precision] (made unique when one repeats)
    model: Any  # a loaded Model, or what an engine runs elsewhere (name, source, backend, precision, providers ...)
    areas: Any  # zoo.measure.metrics.Areas
    seconds: float = 0.0  # inference time, all images
    worst: list = field(default_factory=list)  # heap of (-score, order, n, Worst)


@dataclass
class EvalResult:
    """What :func:`evaluate` measured: per backend, PaddleSeg's metrics; plus what ran on which data."""

    model: str  # the model's name
    dataset: Dataset
    options: Options
    absent: str  # "zero" (PaddleSeg <= 2.8) or "one" (>= 2.9): IoU of a class absent from prediction and labels
    labels: tuple[str, ...]  # class names
    backends: dict[str, dict[str, Any]]  # key → metrics summary (+ images/s, providers)
    images: int  # images scored by every backend
    skipped: list[str]  # one message per bad sample skipped
    interrupted: bool  # Ctrl-C stopped the run early: the numbers cover `images` only
    seconds: float
    reference_miou: float | None = None  # the registry's published mIoU (percent), when the data is Cityscapes val
    worst: dict[str, list[Worst]] = field(default_factory=dict)  # key → the worst images, worst first
    colors: tuple[tuple[int, int, int], ...] = ()  # RGB per class id (the model's palette), for pictures
    engine: str = "local"  # what ran the inference: "local" or "ray"
    unknown_ids: dict[int, int] = field(default_factory=dict)  # --ignore-unknown-ids: id → pixels counted as ignored
    unknown_images: int = 0  # images that held such ids

    def as_dict(self) -> dict[str, Any]:
        backends = {}
        for key, summary in self.backends.items():
            entry = dict(summary)
            if self.reference_miou is not None:
                entry["miou_minus_reference"] = round(entry["miou"] * 100 - self.reference_miou, 4)
            backends[key] = entry
        return {
            "model": self.model, "engine": self.engine, "data": str(self.dataset.path), "layout": self.dataset.layout,
            "split": self.dataset.split, **self.options.as_dict(), "absent_iou": 1.0 if self.absent == "one" else 0.0,
            "convention": backends[next(iter(backends))]["convention"] if backends else None,
            "labels": list(self.labels), "images": self.images, "skipped": len(self.skipped),
            "skipped_samples": self.skipped, "interrupted": self.interrupted, "seconds": round(self.seconds, 3),
            "reference_miou": self.reference_miou, "backends": backends,
            "unknown_ids": {str(i): c for i, c in sorted(self.unknown_ids.items())},
            "unknown_images": self.unknown_images,
        }  # fmt: skip


# ---- one image --------------------------------------------------------------------------------------------------------


@dataclass
class Loaded:
    """One sample read for scoring: the image, its label and each input the models need; or why it cannot be."""

    sample: Sample
    rgb: np.ndarray | None = None
    label: np.ndarray | None = None
    inputs: dict[Any, np.ndarray] = field(default_factory=dict)  # InputSpec → preprocessed tensor
    unknown: dict[int, int] = field(default_factory=dict)  # label ids outside the classes, ignored: id → pixels
    error: str | None = None


def load_sample(sample: Sample, models: Sequence[Model], options: Options | None = None) -> Loaded:
    """Decode a sample's image and label and preprocess it for each model; a bad file becomes ``error``. With
    ``options``, the label follows their conventions (ADE20K's reduce_zero_label) and its ids are checked against
    the models' classes and the ignore value."""
    import numpy as np

    from zoo import images
    from zoo.measure import datasets, metrics

    try:
        rgb = images.decode(sample.image).rgb
        label = datasets.read_label(sample.label, rgb.shape[:2])
        unknown: dict[int, int] = {}
        if options is not None and options.reduce_zero_label:  # ADE20K's files: 0 is "other", class c is c + 1
            label = metrics.reduce_zero_label(label, options.ignore_index)
        if options is not None and models:
            classes = max(m.num_classes for m in models)
            if not options.ignore_unknown_ids:
                datasets.check_ids(sample.label, label, classes, options.ignore_index)
            elif unknown := datasets.unknown_ids(label, classes, options.ignore_index):
                label = np.where(np.isin(label, list(unknown)), options.ignore_index, label).astype(label.dtype)
        inputs: dict[Any, np.ndarray] = {}
        for model in models:
            spec = model.architecture.input
            if spec not in inputs:
                inputs[spec] = model.prepare(rgb)
        return Loaded(sample, rgb, label, inputs, unknown=unknown)
    except (ImageError, DatasetError) as exc:
        return Loaded(sample, error=str(exc))


def ran(model: Any) -> dict[str, Any]:
    """What ran a column, as its runner says: providers, threads, and runner options (a tuned choice's among them)."""
    said = getattr(model, "described", None) or {}
    return {"providers": list(model.providers), "threads": said.get("threads"), "options": said.get("options") or {}}


@dataclass
class ImageScore:
    """One model's result on one image."""

    pred: np.ndarray  # label map [H, W]
    areas: tuple[np.ndarray, np.ndarray, np.ndarray]  # per class: intersect, predicted, labelled pixels
    seconds: float  # inference time
    confusion: tuple[np.ndarray, np.ndarray]  # sparse confusion matrix: cells label * C + pred, pixel counts


def score_image(models: Sequence[Model], item: Loaded, options: Options, num_classes: int) -> list[ImageScore]:
    """Every model's prediction and per-class areas on one loaded sample (the per-image step of both engines)."""
    from zoo.measure import metrics

    size = item.rgb.shape[:2]  # type: ignore[union-attr]
    scores = []
    for model in models:
        started = time.perf_counter()
        pred = predict(model, item.inputs[model.architecture.input], size, options)
        seconds = time.perf_counter() - started
        areas = metrics.areas_of(pred, item.label, num_classes, options.ignore_index)  # type: ignore[arg-type]
        confusion = metrics.confusion_of(pred, item.label, num_classes, options.ignore_index)  # type: ignore[arg-type]
        scores.append(ImageScore(pred, areas, seconds, confusion))
    return scores


# ---- one evaluation ---------------------------------------------------------------------------------------------------


class Tally:
    """One evaluation's checks and running totals, whichever engine infers (see the module docstring).

    ``models`` are loaded Models, or what an engine runs elsewhere with the same attributes (zoo/engines/shipping.py).
    """

    def __init__(self, models: Sequence[Any], dataset: Dataset, *, options: Options | None = None,
                 limit: int | None = None, skip_bad: bool = False, absent: str = "zero", progress: bool = False,
                 keep_worst: int = 0, reference_miou: float | None = None, engine: str = "local"):  # fmt: skip
        from zoo.measure import datasets, metrics

        if not models:
            raise EvalError("nothing to evaluate: give at least one model (or backend)")
        self.options = options or Options()
        self.options.check()
        if absent not in metrics.ABSENT:
            raise EvalError(f"unknown absent-class convention '{absent}'; choose one of: {', '.join(metrics.ABSENT)}")
        self.models, self.dataset, self.absent, self.skip_bad = list(models), dataset, absent, skip_bad
        self.keep_worst, self.reference_miou, self.engine = keep_worst, reference_miou, engine
        samples = list(dataset.samples[:limit] if limit else dataset.samples)
        self.skipped: list[str] = []
        self.good: list[Sample] = []
        for sample in samples:  # missing and mis-sized labels are found now, not an hour into the run
            problem = datasets.check(sample)
            if problem is None:
                self.good.append(sample)
            elif skip_bad:
                self.skipped.append(problem)
            else:
                raise DatasetError(_bad_message(problem, samples, self.good))
        self.num_classes = max(m.num_classes for m in self.models)
        self.scored: list[Scored] = []
        for model in self.models:
            base = model.backend if model.precision == "fp32" else f"{model.backend}/{model.precision}"
            key, n = base, 2
            while key in {s.key for s in self.scored}:
                key, n = f"{base}-{n}", n + 1
            self.scored.append(Scored(key, model, metrics.Areas(self.num_classes)))
        self.ran = {s.key: ran(s.model) for s in self.scored}  # the Ray engine puts the workers' own here
        self.images = 0
        self.unknown: dict[int, int] = {}  # --ignore-unknown-ids: label id → pixels ignored, over the images counted
        self.unknown_images = 0
        self.bar = _bar(len(self.good), progress)
        self._counter = itertools.count()

    def bad(self, message: str) -> None:
        """A sample that could not be read: skipped and counted with ``skip_bad``, else the evaluation stops."""
        if not self.skip_bad:
            raise DatasetError(f"{message} — fix it or pass --skip-bad to skip such images")
        self.skipped.append(message)
        self.bar.update(1)

    def add(self, sample: Sample, scores: Sequence[ImageScore], rgb: np.ndarray | None = None,
            label: np.ndarray | None = None, *, order: int | None = None,
            unknown: dict[int, int] | None = None) -> None:  # fmt: skip
        """Count one image for every model at once (all count it, or none does).

        ``order`` (the sample's place in the data set) breaks ties between equally bad images, so the worst images
        kept do not depend on the order in which an engine's results arrive.
        """
        from zoo.measure import metrics

        for s, one in zip(self.scored, scores, strict=True):
            s.areas.add(one.areas, one.confusion)
            s.seconds += one.seconds
            if self.keep_worst:
                entry = Worst(metrics.image_miou(*one.areas), sample.image, rgb, one.pred, label, sample)
                n = next(self._counter)
                heapq.heappush(s.worst, (-entry.score, n if order is None else order, n, entry))
                if len(s.worst) > self.keep_worst:
                    heapq.heappop(s.worst)  # drops the best of the kept ones
        for i, c in (unknown or {}).items():
            self.unknown[i] = self.unknown.get(i, 0) + c
        self.unknown_images += bool(unknown)
        self.images += 1
        self.bar.update(1)

    def result(self, seconds: float, interrupted: bool = False) -> EvalResult:
        """The metrics of what was counted; the worst images with their pictures read again where not kept."""
        self.bar.close()
        if self.images == 0 and not interrupted:  # a result over 0 images is no result
            shown = f": {self.skipped[0]}" + (f" (and {len(self.skipped) - 1} more)" if len(self.skipped) > 1 else "")
            raise EvalError(f"no usable image in {self.dataset.describe()}{shown if self.skipped else ''}; "
                            "fix the data set")  # fmt: skip
        backends = {}
        for s in self.scored:
            summary = s.areas.summary(absent=self.absent)
            summary["images_per_second"] = round(self.images / s.seconds, 3) if s.seconds else None
            summary.update(self.ran[s.key])
            summary["model_path"] = str(s.model.source)
            backends[s.key] = summary
        worst = {s.key: [t[-1] for t in sorted(s.worst, key=lambda t: (-t[0], t[1]))] for s in self.scored}
        for entry in (w for kept in worst.values() for w in kept if w.rgb is None or w.label is None):
            again = load_sample(entry.sample, [], self.options)
            if again.error is None:
                entry.rgb, entry.label = again.rgb, again.label
        worst = {k: [w for w in kept if w.rgb is not None and w.label is not None] for k, kept in worst.items()}
        first = self.models[0]
        labels = max((m.labels for m in self.models), key=len)
        return EvalResult(first.name, self.dataset, self.options, self.absent, tuple(labels), backends, self.images,
                          self.skipped, interrupted, seconds, self.reference_miou, worst,
                          first.architecture.colors(256), self.engine, dict(self.unknown),
                          self.unknown_images)  # fmt: skip


def run(
    models: Model | Sequence[Model],
    data: str | Path | Dataset,
    *,
    split: str = "val",
    options: Options | None = None,
    limit: int | None = None,
    skip_bad: bool = False,
    absent: str = "zero",
    progress: bool = False,
    keep_worst: int = 0,
    reference_miou: float | None = None,
) -> EvalResult:
    """Score loaded models on the same images of ``data``; see the module docstring. Ctrl-C returns a partial result."""
    from zoo.measure import datasets
    from zoo.measure.datasets import Dataset

    models = [models] if not isinstance(models, Sequence) else list(models)
    dataset = data if isinstance(data, Dataset) else datasets.open_dataset(data, split=split)
    tally = Tally(models, dataset, options=options, limit=limit, skip_bad=skip_bad, absent=absent, progress=progress,
                  keep_worst=keep_worst, reference_miou=reference_miou)  # fmt: skip
    readers = ThreadPoolExecutor(READERS, thread_name_prefix="zoo-eval-read")
    started, interrupted = time.perf_counter(), False
    try:
        queue = iter(tally.good)
        reading: deque[Future[Loaded]] = deque()

        def read_more() -> None:
            while len(reading) < PREFETCH and (sample := next(queue, None)) is not None:
                reading.append(readers.submit(load_sample, sample, models, tally.options))

        read_more()
        while reading:
            item = reading.popleft().result()
            read_more()
            if item.error is not None:
                tally.bad(item.error)
                continue
            tally.add(item.sample, score_image(models, item, tally.options, tally.num_classes), item.rgb, item.label,
                      unknown=item.unknown)  # fmt: skip
    except KeyboardInterrupt:
        interrupted = True
    finally:
        tally.bar.close()
        readers.shutdown(wait=True, cancel_futures=True)
    return tally.result(time.perf_counter() - started, interrupted)


def evaluate(
    model: str | Path | Model | Sequence[Model],
    data: str | Path | Dataset,
    *,
    backends: Sequence[str | None] = (None,),  # None: the default backend, as runtime.load reads it from the specs
    device: str = "cpu",
    threads: int | None = None,
    precisions: Sequence[str] = ("fp32",),
    **kwargs: Any,
) -> EvalResult:
    """Evaluate a registry name, ``.onnx`` file or model folder on each backend (or already loaded models).

    ``kwargs`` are :func:`run`'s (``options``, ``limit``, ``skip_bad``, ``absent``, ``progress``, ...). When ``model``
    is a registry name and ``data`` is Cityscapes' val split, the registry's published mIoU is the reference.
    """
    from zoo.measure import datasets
    from zoo.registry import catalog
    from zoo.runners import runtime

    if isinstance(model, (str, Path)):
        if not backends or not precisions:
            raise EvalError("nothing to evaluate: give at least one backend and precision")
        target = catalog.resolve_target(model)
        loaded = [runtime.load(target, backend=b, device=device, threads=threads, precision=p)
                  for b in backends for p in precisions]  # fmt: skip
        kwargs["options"] = label_conventions(kwargs.get("options"), target)
    else:
        loaded = model
    dataset = data if isinstance(data, datasets.Dataset) else datasets.open_dataset(data, split=kwargs.pop("split", "val"))
    if kwargs.get("reference_miou") is None and isinstance(model, str):
        kwargs["reference_miou"] = reference_miou(model, dataset)
    return run(loaded, dataset, **kwargs)


def reference_miou(name: str, dataset: Dataset) -> float | None:
    """The registry's published mIoU (percent) for a registry name evaluated on Cityscapes val; else None."""
    from zoo.registry import catalog
    from zoo.errors import ZooError

    if not dataset.cityscapes_val or "/" in name or name.endswith(".onnx"):
        return None
    try:
        entry = catalog.resolve(name).entry
        return entry.miou if entry is not None else None
    except (ZooError, KeyError):  # a file path, or a registry that does not load: no reference
        return None


def _bad_message(problem: str, samples: list, good: list) -> str:
    return (f"{problem} — fix the data set or pass --skip-bad to skip such images "
            f"(found while checking sample {len(good) + 1} of {len(samples)})")  # fmt: skip


def _bar(total: int, progress: bool) -> Any:
    from tqdm import tqdm

    # disable=None: tqdm turns itself off when stderr is not a terminal
    return tqdm(total=total, unit="img", desc="eval", disable=None if progress else True, dynamic_ncols=True)
