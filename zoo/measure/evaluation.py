"""Accuracy against ground truth: run one or more loaded models over a labelled data set and score them as PaddleSeg.

Inference modes follow PaddleSeg's ``val.py`` (``paddleseg.core.infer``):

* ``whole``: the model on the whole (preprocessed) image, scores resized to the image and arg-maxed;
* ``slide``: overlapping ``crop`` windows every ``stride`` (both H, W); each window's scores are added into a
  full-size map and divided by how many windows covered each pixel (``slide_inference``);
* ``scales`` / ``flip``: the input resized by each scale (bilinear, ``int(side * s + 0.5)``), optionally mirrored,
  inferred (whole or slide), mirrored back, resized to the input size and averaged (``aug_inference``).

Slide and augmentation add scores, so they need a model exported with ``--output-op none`` (logits) or ``softmax``;
an argmax model is an :class:`~zoo.errors.EvalError` saying so.

The data flows as in ``zoo run`` (zoo/engines/segment.py): reader threads decode and preprocess the next images while the
calling thread infers; per-class areas are accumulated per image (zoo/measure/metrics.py), so memory holds a few images'
maps, never the data set. Ctrl-C stops at the current image and returns the partial result (``interrupted``).
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

if TYPE_CHECKING:
    import numpy as np

    from zoo.measure.datasets import Dataset, Sample
    from zoo.runners.runtime import Model

MODES = ("whole", "slide")
WORST = 4  # images kept per backend for --report (the lowest per-image mIoU)


@dataclass(frozen=True)
class Options:
    """How each image is inferred (PaddleSeg val.py's is_slide / crop_size / stride / scales / flip)."""

    mode: str = "whole"  # "whole" or "slide"
    crop: tuple[int, int] | None = None  # slide window (H, W)
    stride: tuple[int, int] | None = None  # slide step (H, W)
    scales: tuple[float, ...] = (1.0,)  # input scales averaged (aug_inference)
    flip: bool = False  # also average the horizontally mirrored input

    @property
    def augmented(self) -> bool:
        return self.flip or tuple(self.scales) != (1.0,)

    def check(self) -> None:
        if self.mode not in MODES:
            raise EvalError(f"unknown --mode '{self.mode}'; choose one of: {', '.join(MODES)}")
        if self.mode == "slide":
            if not self.crop or not self.stride:
                raise EvalError("--mode slide needs --crop HxW and --stride HxW (e.g. --crop 512x1024 --stride 512x768)")
            if any(v < 1 for v in (*self.crop, *self.stride)):
                raise EvalError(f"--crop and --stride must be positive, got {self.crop} and {self.stride}")
            if self.stride[0] > self.crop[0] or self.stride[1] > self.crop[1]:
                raise EvalError(f"--stride {self.stride[0]}x{self.stride[1]} is larger than --crop "
                                f"{self.crop[0]}x{self.crop[1]}: pixels between windows would not be predicted")  # fmt: skip
        elif self.crop or self.stride:
            raise EvalError("--crop and --stride are for --mode slide")
        if not self.scales or any(s <= 0 for s in self.scales):
            raise EvalError(f"--scales must be positive numbers, got {list(self.scales)}")

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "crop": list(self.crop) if self.crop else None,
                "stride": list(self.stride) if self.stride else None, "scales": list(self.scales), "flip": self.flip}  # fmt: skip


@dataclass
class Worst:
    """One badly segmented image kept for the report."""

    score: float  # the image's own mIoU (classes present in it or its prediction)
    image: Path
    rgb: np.ndarray
    pred: np.ndarray
    label: np.ndarray


@dataclass
class Scored:
    """One model's running totals."""

    key: str  # its column: the backend name (made unique when a backend repeats)
    model: Model
    areas: Any  # zoo.measure.metrics.Areas
    seconds: float = 0.0  # inference time, all images
    worst: list = field(default_factory=list)  # heap of (-score, n, Worst)


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

    def as_dict(self) -> dict[str, Any]:
        backends = {}
        for key, summary in self.backends.items():
            entry = dict(summary)
            if self.reference_miou is not None:
                entry["miou_minus_reference"] = round(entry["miou"] * 100 - self.reference_miou, 4)
            backends[key] = entry
        return {
            "model": self.model, "data": str(self.dataset.path), "layout": self.dataset.layout,
            "split": self.dataset.split, **self.options.as_dict(), "absent_iou": 1.0 if self.absent == "one" else 0.0,
            "convention": backends[next(iter(backends))]["convention"] if backends else None,
            "labels": list(self.labels), "images": self.images, "skipped": len(self.skipped),
            "skipped_samples": self.skipped, "interrupted": self.interrupted, "seconds": round(self.seconds, 3),
            "reference_miou": self.reference_miou, "backends": backends,
        }  # fmt: skip


# ---- inference modes ------------------------------------------------------------------------------------------------


def resize_scores(t: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``[1, C, H, W]`` float scores to ``size`` (H, W), half-pixel centres as Paddle's
    ``F.interpolate(mode='bilinear', align_corners=False)``."""
    import cv2
    import numpy as np

    h, w = size
    if t.shape[2:] == (h, w):
        return t
    hwc = np.ascontiguousarray(t[0].transpose(1, 2, 0), dtype=np.float32)
    parts = [cv2.resize(hwc[:, :, i : i + 256], (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
             for i in range(0, hwc.shape[2], 256)]  # fmt: skip  (cv2 takes at most 512 channels)
    return np.concatenate(parts, axis=2).transpose(2, 0, 1)[None]


def _scores(model: Model, x: np.ndarray) -> np.ndarray:
    """The model's float scores for ``x``; an argmax model cannot be averaged."""
    import numpy as np

    out = np.asarray(model.infer(x))
    if not np.issubdtype(out.dtype, np.floating) or out.ndim != 4:
        raise EvalError(
            f"--mode slide, --scales and --flip add up the model's scores, but {model.name} outputs "
            f"{out.dtype} of shape {list(out.shape)} (class ids: exported with --output-op argmax); export it with "
            "'zoo export NAME --output-op none' (or softmax) and convert it again, or evaluate with --mode whole"
        )
    return out.astype(np.float32, copy=False)


def slide_scores(model: Model, x: np.ndarray, crop: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """PaddleSeg's ``slide_inference`` on a preprocessed ``[1, 3, H, W]`` input: summed window scores / count."""
    import numpy as np

    h_im, w_im = x.shape[2:]
    (h_crop, w_crop), (h_stride, w_stride) = crop, stride
    rows = 1 if h_im <= h_crop else int(np.ceil((h_im - h_crop) / h_stride)) + 1
    cols = 1 if w_im <= w_crop else int(np.ceil((w_im - w_crop) / w_stride)) + 1
    total: np.ndarray | None = None
    count = np.zeros((h_im, w_im), np.float32)
    for r, c in itertools.product(range(rows), range(cols)):
        h2, w2 = min(r * h_stride + h_crop, h_im), min(c * w_stride + w_crop, w_im)
        h1, w1 = max(h2 - h_crop, 0), max(w2 - w_crop, 0)  # the last window ends at the border
        out = _scores(model, np.ascontiguousarray(x[:, :, h1:h2, w1:w2]))
        if total is None:
            total = np.zeros((1, out.shape[1], h_im, w_im), np.float64)  # float64 sums, as PaddleSeg's numpy ones
        total[:, :, h1:h2, w1:w2] += out[:, :, : h2 - h1, : w2 - w1]
        count[h1:h2, w1:w2] += 1
    assert total is not None
    return (total / count).astype(np.float32)


def aug_scores(model: Model, x: np.ndarray, options: Options) -> np.ndarray:
    """PaddleSeg's ``aug_inference``: mean scores over scales × (unflipped, mirrored) at the input's size."""
    import numpy as np

    h, w = x.shape[2:]
    flips = (False, True) if options.flip else (False,)
    total = np.zeros((1, 1, 1, 1), np.float32)
    for scale in options.scales:
        size = (int(h * scale + 0.5), int(w * scale + 0.5))
        scaled = resize_scores(x, size) if size != (h, w) else x
        for flip in flips:
            inp = np.ascontiguousarray(scaled[:, :, :, ::-1]) if flip else scaled
            out = _infer_scores(model, inp, options)
            if flip:
                out = out[:, :, :, ::-1]
            total = total + resize_scores(np.ascontiguousarray(out), (h, w))
    return total / (len(options.scales) * len(flips))


def _infer_scores(model: Model, x: np.ndarray, options: Options) -> np.ndarray:
    if options.mode == "slide":
        return slide_scores(model, x, options.crop, options.stride)  # type: ignore[arg-type]
    return _scores(model, x)


def predict(model: Model, x: np.ndarray, size: tuple[int, int], options: Options) -> np.ndarray:
    """Label map ``[H, W]`` at ``size`` for a preprocessed input, as ``options`` say."""
    if options.augmented:
        out = aug_scores(model, x, options)
    elif options.mode == "slide":
        out = slide_scores(model, x, options.crop, options.stride)  # type: ignore[arg-type]
    else:
        out = model.infer(x)
    return model.to_labels(out, size)


# ---- the run --------------------------------------------------------------------------------------------------------


@dataclass
class _Loaded:
    sample: Sample
    rgb: np.ndarray | None = None
    label: np.ndarray | None = None
    inputs: dict[Any, np.ndarray] = field(default_factory=dict)  # InputSpec → preprocessed tensor
    error: str | None = None


def _load(sample: Sample, models: Sequence[Model], reduce_zero: bool = False,
          ignore_index: int = 255) -> _Loaded:  # fmt: skip
    from zoo import images
    from zoo.measure import datasets, metrics

    try:
        rgb = images.decode(sample.image).rgb
        label = datasets.read_label(sample.label, rgb.shape[:2])
        if reduce_zero:
            label = metrics.reduce_zero_label(label, ignore_index)
        inputs: dict[Any, np.ndarray] = {}
        for model in models:
            spec = model.architecture.input
            if spec not in inputs:
                inputs[spec] = model.prepare(rgb)
        return _Loaded(sample, rgb, label, inputs)
    except (ImageError, DatasetError) as exc:
        return _Loaded(sample, error=str(exc))


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
    ignore_index: int = 255,
    reduce_zero_label: bool = False,
) -> EvalResult:
    """Score loaded models on the same images of ``data``; see the module docstring. Ctrl-C returns a partial result.

    ``ignore_index``, ``reduce_zero_label``: the data set's label conventions (a registry entry's own, see
    :func:`evaluate`); ADE20K's shifts every label down by one and ignores 0."""
    from zoo.engines import segment
    from zoo.measure import datasets, metrics
    from zoo.measure.datasets import Dataset

    models = [models] if not isinstance(models, Sequence) else list(models)
    if not models:
        raise EvalError("nothing to evaluate: give at least one model (or backend)")
    options = options or Options()
    options.check()
    if absent not in metrics.ABSENT:
        raise EvalError(f"unknown absent-class convention '{absent}'; choose one of: {', '.join(metrics.ABSENT)}")
    dataset = data if isinstance(data, Dataset) else datasets.open_dataset(data, split=split)
    samples = list(dataset.samples[:limit] if limit else dataset.samples)
    skipped: list[str] = []
    good = []
    for sample in samples:  # missing and mis-sized labels are found now, not an hour into the run
        problem = datasets.check(sample)
        if problem is None:
            good.append(sample)
        elif skip_bad:
            skipped.append(problem)
        else:
            raise DatasetError(_bad_message(problem, samples, good))
    num_classes = max(m.num_classes for m in models)
    scored = []
    for model in models:
        base = model.backend if model.precision == "fp32" else f"{model.backend}/{model.precision}"
        key, n = base, 2
        while key in {s.key for s in scored}:
            key, n = f"{base}-{n}", n + 1
        scored.append(Scored(key, model, metrics.Areas(num_classes)))
    bar = _bar(len(good), progress)
    readers = ThreadPoolExecutor(segment.READERS, thread_name_prefix="zoo-eval-read")
    started, images, interrupted = time.perf_counter(), 0, False
    counter = itertools.count()
    try:
        queue = iter(good)
        reading: deque[Future[_Loaded]] = deque()

        def read_more() -> None:
            while len(reading) < segment.PREFETCH and (sample := next(queue, None)) is not None:
                reading.append(readers.submit(_load, sample, models, reduce_zero_label, ignore_index))

        read_more()
        while reading:
            item = reading.popleft().result()
            read_more()
            if item.error is not None:
                if not skip_bad:
                    raise DatasetError(f"{item.error} — fix it or pass --skip-bad to skip such images")
                skipped.append(item.error)
                bar.update(1)
                continue
            size = item.rgb.shape[:2]
            per_image = []
            for s in scored:
                t0 = time.perf_counter()
                pred = predict(s.model, item.inputs[s.model.architecture.input], size, options)
                s.seconds += time.perf_counter() - t0
                per_image.append((s, pred, metrics.areas_of(pred, item.label, num_classes, ignore_index)))
            for s, pred, one in per_image:  # all backends count the image, or none does
                s.areas.intersect += one[0]
                s.areas.pred += one[1]
                s.areas.label += one[2]
                s.areas.images += 1
                if keep_worst:
                    entry = Worst(metrics.image_miou(*one), item.sample.image, item.rgb, pred, item.label)
                    heapq.heappush(s.worst, (-entry.score, next(counter), entry))
                    if len(s.worst) > keep_worst:
                        heapq.heappop(s.worst)  # drops the best of the kept ones
            images += 1
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        readers.shutdown(wait=True, cancel_futures=True)
    backends = {}
    for s in scored:
        summary = s.areas.summary(absent=absent)
        summary["images_per_second"] = round(images / s.seconds, 3) if s.seconds else None
        summary["providers"] = s.model.providers
        summary["model_path"] = str(s.model.source)
        backends[s.key] = summary
    worst = {s.key: [w for _, _, w in sorted(s.worst, key=lambda t: -t[0])] for s in scored}
    labels = max((m.labels for m in models), key=len)
    return EvalResult(models[0].name, dataset, options, absent, tuple(labels), backends, images, skipped,
                      interrupted, time.perf_counter() - started, reference_miou, worst,
                      models[0].architecture.colors(256))  # fmt: skip


def evaluate(
    model: str | Path | Model | Sequence[Model],
    data: str | Path | Dataset,
    *,
    backends: Sequence[str] = ("onnx",),
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
    from zoo.runners import runtime

    if isinstance(model, (str, Path)):
        if not backends or not precisions:
            raise EvalError("nothing to evaluate: give at least one backend and precision")
        target = runtime.resolve_target(model)
        kwargs = {**label_conventions(target), **kwargs}
        loaded = [runtime.load(target, backend=b, device=device, threads=threads, precision=p)
                  for b in backends for p in precisions]  # fmt: skip
    else:
        loaded = model
    dataset = data if isinstance(data, datasets.Dataset) else datasets.open_dataset(data, split=kwargs.pop("split", "val"))
    if kwargs.get("reference_miou") is None and isinstance(model, str):
        kwargs["reference_miou"] = reference_miou(model, dataset)
    return run(loaded, dataset, **kwargs)


def label_conventions(target: Any) -> dict[str, Any]:
    """A registered model's (a handle's) own label conventions, as :func:`run`'s keyword arguments ({} for a file)."""
    entry = getattr(target, "entry", None)
    if entry is None:
        return {}
    return {"ignore_index": 255 if entry.ignore_index is None else entry.ignore_index,
            "reduce_zero_label": entry.reduce_zero_label}  # fmt: skip


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
