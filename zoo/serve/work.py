"""The per-request steps, done with zoo run's own code so a served image gives zoo run's bytes.

Decoding is :func:`zoo.images.decode_bytes` (its caps and checks), preprocessing :meth:`Model.prepare`, the label map
:meth:`Model.to_labels` and the PNG files :func:`zoo.postprocess.png_bytes`, exactly as ``zoo run`` calls them.
Everything here is blocking numpy/OpenCV work: the app runs it on its worker pool, never on the event loop.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from zoo.errors import BackendError, ImageError, ImageTooLargeError, RequestError

if TYPE_CHECKING:
    import numpy as np

    from zoo.runners.runtime import Model

FORMATS = ("png", "json", "color", "overlay")  # ?format= of the plain endpoint
MEDIA = {"png": "image/png", "color": "image/png", "overlay": "image/jpeg", "json": "application/json"}


def decode(data: bytes) -> np.ndarray:
    """An uploaded image file → RGB uint8; 413 past zoo's caps, 400 for anything zoo run would refuse."""
    from zoo import images

    try:
        return images.decode_bytes("the uploaded image", data).rgb
    except ImageTooLargeError as exc:
        raise RequestError(413, str(exc)) from None
    except ImageError as exc:
        raise RequestError(400, str(exc)) from None


def prepare(model: Model, rgb: np.ndarray) -> np.ndarray:
    """The network's input tensor, as zoo run makes it."""
    try:
        return model.prepare(rgb)
    except ImageError as exc:
        raise RequestError(400, str(exc)) from None


def infer_batch(model: Model, xs: list[np.ndarray]) -> list[np.ndarray]:
    """Run tensors through the model, equal shapes as one batch; each item's output as a batch of one.

    A model whose export fixed the batch size at 1 runs the items one by one instead (still correct, just unbatched).
    """
    import numpy as np

    outputs: list[np.ndarray] = []
    start = 0
    while start < len(xs):
        end = start + 1
        while end < len(xs) and xs[end].shape == xs[start].shape:
            end += 1
        group = xs[start:end]
        if len(group) == 1:
            outputs.append(model.infer(group[0]))
        else:
            try:
                out = model.infer(np.concatenate(group, axis=0))
                if out.shape[0] != len(group):
                    raise BackendError(f"batch of {len(group)} gave {out.shape[0]} outputs")
                outputs += [out[i : i + 1] for i in range(len(group))]
            except BackendError:
                outputs += [model.infer(x) for x in group]
        start = end
    return outputs


def labels_of(model: Model, output: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return model.to_labels(output, size)


def label_png(labels: np.ndarray) -> bytes:
    """zoo run's ``<stem>.labels.png``: 8-bit class ids, 16-bit past 255 classes."""
    from zoo import postprocess

    return postprocess.label_png(labels)


def color_png(model: Model, labels: np.ndarray) -> bytes:
    """zoo run's ``<stem>.color.png``: paletted for up to 256 classes, else an RGB PNG of the mask."""
    from zoo import postprocess

    return postprocess.color_png(labels, model.colors)


def overlay_jpg(model: Model, rgb: np.ndarray, labels: np.ndarray) -> bytes:
    """zoo run's ``<stem>.overlay.jpg``: the mask blended over the image, the legend strip below, JPEG quality 90."""
    from zoo import postprocess

    arch = model.architecture
    picture = postprocess.overlay_picture(rgb, labels, model.labels, model.colors, arch.overlay_alpha)
    try:
        return postprocess.jpeg_bytes(picture)
    except ValueError as exc:  # e.g. JPEG's 65535-pixel side limit
        raise RequestError(422, f"the overlay result: {exc}") from None


def summary(model: Model, labels: np.ndarray) -> bytes:
    """The JSON of ``?format=json``: size, model, backend and each class's share of the pixels (as zoo run's)."""
    from zoo import postprocess

    h, w = labels.shape
    doc: dict[str, Any] = {
        "width": w,
        "height": h,
        "model": model.name,
        "architecture": model.architecture.name,
        "backend": model.backend,
        "precision": model.precision,
        "num_classes": model.num_classes,
        "classes": postprocess.class_shares(labels, model.labels),
    }
    return json.dumps(doc).encode()


def render(model: Model, fmt: str, rgb: np.ndarray, output: np.ndarray) -> bytes:
    """The plain endpoint's body for ``?format=fmt``."""
    labels = labels_of(model, output, rgb.shape[:2])
    if fmt == "png":
        return label_png(labels)
    if fmt == "color":
        return color_png(model, labels)
    if fmt == "overlay":
        return overlay_jpg(model, rgb, labels)
    return summary(model, labels)


def tensors(model: Model, wanted: dict[str, bool], size: tuple[int, int], output: np.ndarray) -> dict[str, Any]:
    """The v2 outputs a request asked for: ``labels``, ``color`` (the mask), ``labels_png`` (zoo run's file)."""
    labels = labels_of(model, output, size)
    results: dict[str, Any] = {"labels": labels}
    if "color" in wanted:
        results["color"] = model.architecture.colorize(labels)
    if "labels_png" in wanted:
        results["labels_png"] = label_png(labels)
    return results
