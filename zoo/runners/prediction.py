"""What ``Model.predict`` (and ``model(x)``) returns: a label map that knows its image, class names and colours.

:class:`Segmentation` is an ``[H, W]`` numpy array of class ids (so code that treated ``predict``'s result as an array
keeps working) with the conveniences people know from ultralytics' and timm's results, in zoo's words: ``.labels``
(the plain array), ``.colorize()``, ``.overlay()``, ``.shares``, ``.save(dir)`` and, when asked for,
``.probabilities`` (``[C, H, W]`` per-class scores).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import ImageError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Union

    from zoo.runners.runtime import Model

    Palette = Union[str, os.PathLike[str], Sequence[Sequence[int]], None]  # a preset name, a colour file, RGB per class


class Segmentation(np.ndarray):
    """An ``[H, W]`` label map of one image, with the image, class names, colours and (if asked) probabilities."""

    image: np.ndarray | None  # the RGB uint8 image it was predicted on
    names: tuple[str, ...]  # class name per class id
    colors: tuple[tuple[int, int, int], ...]  # RGB per class id
    probabilities: np.ndarray | None  # [C, H, W] float32 per-class probabilities, when predict(probabilities=True)
    source: str | None  # the file it came from, if any
    alpha: float  # the architecture's overlay opacity

    def __array_finalize__(self, obj: Any) -> None:
        for name, default in (("image", None), ("names", ()), ("colors", ()), ("probabilities", None),
                              ("source", None), ("alpha", 0.5)):  # fmt: skip
            setattr(self, name, getattr(obj, name, default))

    @property
    def labels(self) -> np.ndarray:
        """The label map as a plain ``[H, W]`` array of class ids."""
        return np.asarray(self)

    @property
    def shares(self) -> dict[str, float]:
        """Share of pixels per class present, largest first."""
        from zoo.postprocess import class_shares

        return class_shares(self.labels, self.names)

    def colorize(self, *, legend: bool = False, palette: Palette = None) -> np.ndarray:
        """The colour mask (RGB ``[H, W, 3]``); with ``legend``, a strip below it naming the classes present;
        ``palette`` (a preset name such as ``"paddleseg"``, a colour file, or RGB triples) instead of the model's."""
        from zoo import postprocess

        colors = self._colors(palette)
        mask = postprocess.colorize(self.labels, colors)
        return postprocess.legend(mask, self.labels, self.names, colors) if legend else mask

    def overlay(self, *, legend: bool = False, alpha: float | None = None, palette: Palette = None) -> np.ndarray:
        """The image with its colour mask blended in (RGB); with ``legend``, a strip naming the classes present."""
        from zoo import postprocess

        if self.image is None:
            raise ImageError("this label map has no image to overlay; predict on an image to get one")
        return postprocess.overlay_picture(self.image, self.labels, self.names, self._colors(palette),
                                           self.alpha if alpha is None else alpha, legend)  # fmt: skip

    def save(self, folder: str | os.PathLike[str], stem: str | None = None, *, legend: bool = True,
             palette: Palette = None) -> dict[str, Path]:  # fmt: skip
        """Write what ``zoo run`` writes, byte for byte: ``<stem>.labels.png`` (class ids), ``.color.png`` (the colour
        mask, the label map's size: no legend) and ``.overlay.jpg`` (with the legend strip below, unless ``legend`` is
        False), and ``.probabilities.npy`` when there are probabilities, into ``folder``; returns the paths by kind."""
        from zoo import postprocess

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        stem = stem or (Path(self.source).stem if self.source else "prediction")
        colors = self._colors(palette)
        paths = {"labels": out / f"{stem}.labels.png", "color": out / f"{stem}.color.png"}
        paths["labels"].write_bytes(postprocess.label_png(self.labels))
        paths["color"].write_bytes(postprocess.color_png(self.labels, colors))
        if self.image is not None:
            paths["overlay"] = out / f"{stem}.overlay.jpg"
            picture = postprocess.overlay_picture(self.image, self.labels, self.names, colors, self.alpha, legend)
            try:
                paths["overlay"].write_bytes(postprocess.jpeg_bytes(picture))
            except ValueError as exc:
                raise ImageError(f"{paths['overlay']}: {exc}") from None
        if self.probabilities is not None:
            paths["probabilities"] = out / f"{stem}.probabilities.npy"
            np.save(paths["probabilities"], self.probabilities)
        return paths

    def _colors(self, palette: Palette) -> tuple[tuple[int, int, int], ...]:
        """The model's colours, or ``palette``'s (padded with PaddleSeg's pseudo-colours past its end): one per class,
        as ``zoo run --palette`` draws."""
        from zoo.registry import model_facts, presets

        if palette is None:
            return self.colors
        if isinstance(palette, (str, os.PathLike)):
            given = model_facts.read_palette(str(palette), option="palette")
        else:
            given = tuple((int(c[0]), int(c[1]), int(c[2])) for c in palette)
        n = max(len(self.names), 1)
        return (given + presets.paddleseg_palette(n)[len(given) : n])[:n]


def images_of(x: Any) -> tuple[list[tuple[np.ndarray, str | None]], bool]:
    """What predict accepts, as (RGB image, source) pairs and whether the caller gave one image (not a list or batch):
    an ``[H, W, 3]`` uint8 RGB array, a path, a list of either, or an ``[N, H, W, 3]`` batch."""
    from zoo.images import read_image

    if isinstance(x, (str, os.PathLike)):
        return [(read_image(x), str(x))], True
    if isinstance(x, np.ndarray) and x.ndim == 4:
        return [(image, None) for image in x], False
    if isinstance(x, np.ndarray):
        return [(x, None)], True
    if isinstance(x, (list, tuple)):
        items = []
        for item in x:
            got, single = images_of(item)
            if not single:
                raise ImageError("predict() takes a list of images or paths, not a list of batches")
            items += got
        return items, False
    raise ImageError(f"predict() takes an RGB uint8 array (H, W, 3), a path, a list of either, or an (N, H, W, 3) "
                     f"batch; got {type(x).__name__}")  # fmt: skip


def predict(model: Model, x: Any, probabilities: bool = False) -> Segmentation | list[Segmentation]:
    """``model`` on each image of ``x`` (see :func:`images_of`): one Segmentation, or a list for a list or batch."""
    items, single = images_of(x)
    results = []
    for rgb, source in items:
        output = model.infer(model.prepare(rgb))
        h, w = rgb.shape[:2]
        result = model.to_labels(output, (h, w)).view(Segmentation)
        result.image, result.source = rgb, source
        result.names, result.colors = tuple(model.labels), tuple(model.colors)
        result.alpha = model.architecture.overlay_alpha
        if probabilities:
            result.probabilities = class_probabilities(output, (h, w), model.name)
        results.append(result)
    return results[0] if single else results


def class_probabilities(output: np.ndarray, size: tuple[int, int], name: str) -> np.ndarray:
    """``[C, H, W]`` float32 probabilities from a scores output (softmax of logits, unless they already sum to 1)."""
    import cv2

    from zoo.errors import BackendError

    out = np.asarray(output)
    if not (np.issubdtype(out.dtype, np.floating) and out.ndim == 4):
        raise BackendError(f"{name} outputs class ids (its export ends in argmax), so it has no probabilities; "
                           f"export it with scores: 'zoo export {name} --output-op softmax'")  # fmt: skip
    scores = out[0].astype(np.float32)
    if not np.allclose(scores.sum(axis=0), 1.0, atol=1e-3) or scores.min() < 0:
        scores = np.exp(scores - scores.max(axis=0, keepdims=True))
        scores /= scores.sum(axis=0, keepdims=True)
    h, w = size
    if scores.shape[1:] != (h, w):
        hwc = cv2.resize(np.ascontiguousarray(scores.transpose(1, 2, 0)), (w, h), interpolation=cv2.INTER_LINEAR)
        scores = hwc.reshape(h, w, -1).transpose(2, 0, 1)
    return np.ascontiguousarray(scores, dtype=np.float32)
