"""The tensors around a network: an RGB image into its input (PaddleSeg's preprocessing) and its first output back
into a label map. Pure numpy/OpenCV, beneath everything that runs a model (runtime, quantize's calibration, verify)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.errors import BackendError
from zoo.registry.spec import InputSpec

if TYPE_CHECKING:
    import numpy as np


def preprocess(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` → the network's float32 ``[1, 3, H, W]``: PaddleSeg's ``(x * scale - mean) / std``."""
    import numpy as np

    from zoo.runners import deploy

    if deploy.needs_geometry(spec):  # resize/pad exactly as PaddleSeg's Compose does (zoo/runners/deploy.py)
        return deploy.preprocess(rgb, spec)
    if spec.color.upper() == "BGR":
        rgb = rgb[:, :, ::-1]
    std = np.asarray(spec.std, dtype=np.float64)
    gain = (spec.scale / std).astype(np.float32)[:, None, None]  # (x * scale - mean) / std == x * gain + bias
    bias = (-np.asarray(spec.mean, dtype=np.float64) / std).astype(np.float32)[:, None, None]
    x = np.empty((1, 3, rgb.shape[0], rgb.shape[1]), dtype=np.float32)
    np.multiply(rgb.transpose(2, 0, 1), gain, out=x[0])  # HWC → CHW happens inside the one pass
    x[0] += bias
    return x if spec.dtype == "float32" else x.astype(spec.dtype)


def output_to_labels(output: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A model's first output (class ids ``[N, H, W]``/``[N, 1, H, W]`` or scores ``[N, C, H, W]``) → ``[H, W]``.

    Scores are resized bilinearly to ``size`` before the argmax (as PaddleSeg does), class ids by nearest neighbour.
    """
    import cv2
    import numpy as np

    out = np.asarray(output)
    h, w = size
    if np.issubdtype(out.dtype, np.integer):
        if out.ndim == 4 and out.shape[1] == 1:
            out = out[:, 0]
        if out.ndim == 3:
            out = out[0]
        if out.ndim != 2:
            raise BackendError(f"the model's label output has shape {list(output.shape)}; expected [N, H, W]")
        if out.shape != (h, w):
            out = cv2.resize(out.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
    elif np.issubdtype(out.dtype, np.floating) and out.ndim == 4:
        scores = out[0]
        if scores.shape[1:] != (h, w):
            hwc = np.ascontiguousarray(scores.transpose(1, 2, 0), dtype=np.float32)
            resized = cv2.resize(hwc, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
            out = resized.argmax(axis=2)
        else:
            out = scores.argmax(axis=0)
    else:
        raise BackendError(
            f"the model's first output is {out.dtype} of shape {list(output.shape)}; zoo expects class ids "
            "(int [N, H, W]) or scores (float [N, C, H, W])"
        )
    if out.size and (out.min() < 0 or out.max() > 255):
        return out.astype(np.int32)
    return out.astype(np.uint8)


# ---- load -----------------------------------------------------------------------------------------------------------
