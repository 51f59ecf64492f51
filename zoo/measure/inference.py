"""PaddleSeg's inference modes for ``zoo eval`` (``paddleseg.core.infer``), on a loaded model's preprocessed input.

* ``whole``: the model on the whole (preprocessed) image, scores resized to the image and arg-maxed;
* ``slide``: overlapping ``crop`` windows every ``stride`` (both H, W); each window's scores are added into a
  full-size map and divided by how many windows covered each pixel (``slide_inference``);
* ``scales`` / ``flip``: the input resized by each scale (bilinear, ``int(side * s + 0.5)``), optionally mirrored,
  inferred (whole or slide), mirrored back, resized to the input size and averaged (``aug_inference``).

Slide and augmentation add scores, so they need a model exported with ``--output-op none`` (logits) or ``softmax``;
an argmax model is an :class:`~zoo.errors.EvalError` saying so.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoo.errors import EvalError
from zoo.images import MAX_PIXELS

if TYPE_CHECKING:
    import numpy as np

    from zoo.runners.runtime import Model

MODES = ("whole", "slide")
MAX_SCALE = 4.0  # --scales above this are refused (PaddleSeg's aug_eval configs stay within 0.5-2.0)


@dataclass(frozen=True)
class Options:
    """How each image is inferred (PaddleSeg val.py's is_slide / crop_size / stride / scales / flip)."""

    mode: str = "whole"  # "whole" or "slide"
    crop: tuple[int, int] | None = None  # slide window (H, W)
    stride: tuple[int, int] | None = None  # slide step (H, W)
    scales: tuple[float, ...] = (1.0,)  # input scales averaged (aug_inference)
    flip: bool = False  # also average the horizontally mirrored input
    ignore_index: int = 255  # label value never scored (a registry entry's own, see evaluation.label_conventions)
    reduce_zero_label: bool = False  # ADE20K's labels: 0 is "other" (ignored), class c is stored as c + 1
    ignore_unknown_ids: bool = False  # label ids outside the classes: ignored and counted (True), or an error

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
        if not self.scales or any(not 0 < s <= MAX_SCALE for s in self.scales):  # 1e9 would allocate the moon
            raise EvalError(f"--scales must be above 0 and up to {MAX_SCALE}, got {list(self.scales)}")

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "crop": list(self.crop) if self.crop else None,
                "stride": list(self.stride) if self.stride else None, "scales": list(self.scales), "flip": self.flip,
                "ignore_index": self.ignore_index, "reduce_zero_label": self.reduce_zero_label,
                "ignore_unknown_ids": self.ignore_unknown_ids}  # fmt: skip


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


def scores(model: Model, x: np.ndarray) -> np.ndarray:
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
        out = scores(model, np.ascontiguousarray(x[:, :, h1:h2, w1:w2]))
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
        if size[0] * size[1] > MAX_PIXELS or min(size) < 1:
            raise EvalError(f"--scales {scale} makes a {w}x{h} image {size[1]}x{size[0]} pixels, beyond what zoo "
                            f"infers ({MAX_PIXELS} pixels, at least 1x1); choose smaller --scales")  # fmt: skip
        scaled = resize_scores(x, size) if size != (h, w) else x
        for flip in flips:
            inp = np.ascontiguousarray(scaled[:, :, :, ::-1]) if flip else scaled
            out = infer_scores(model, inp, options)
            if flip:
                out = out[:, :, :, ::-1]
            total = total + resize_scores(np.ascontiguousarray(out), (h, w))
    return total / (len(options.scales) * len(flips))


def infer_scores(model: Model, x: np.ndarray, options: Options) -> np.ndarray:
    if options.mode == "slide":
        return slide_scores(model, x, options.crop, options.stride)  # type: ignore[arg-type]
    return scores(model, x)


def predict(model: Model, x: np.ndarray, size: tuple[int, int], options: Options) -> np.ndarray:
    """Label map ``[H, W]`` at ``size`` for a preprocessed input, as ``options`` say."""
    if options.augmented:
        out = aug_scores(model, x, options)
    elif options.mode == "slide":
        out = slide_scores(model, x, options.crop, options.stride)  # type: ignore[arg-type]
    else:
        out = model.infer(x)
    return model.to_labels(out, size)


def label_conventions(options: Options | None, target: Any) -> Options:
    """``options`` with a registered model's (a handle's) own ignore_index and reduce_zero_label (ADE20K's)."""
    from dataclasses import replace

    entry = getattr(target, "entry", None)
    options = options or Options()
    if entry is None:
        return options
    ignore = 255 if entry.ignore_index is None else entry.ignore_index
    return replace(options, ignore_index=ignore, reduce_zero_label=entry.reduce_zero_label)
