"""A PaddleSeg export's ``deploy.yaml``, read as PaddleSeg's ``deploy/python/infer.py`` reads it, and its preprocessing.

``tools/export.py`` writes ``{"Deploy": {model, params, transforms, input_shape, output_op, output_dtype}}`` where
``transforms`` are the config's *val* transforms; ``infer.py`` builds them with ``paddleseg.transforms.Compose``,
which reads the image as BGR float32, converts it to RGB (``to_rgb``) and applies the transforms in order. What zoo
reads (anything else is refused, so a transform zoo does not know never gives quietly wrong masks):

    Normalize {mean, std}                 (x / 255 - mean) / std; one value stands for all three channels
    NormalizeImage {mean, std, is_scale}  the PaddleX/PaddleDetection spelling; is_scale: false drops the / 255
    Resize {target_size [W, H], keep_ratio, interp: LINEAR}
    ResizeByLong {long_size}, ResizeByShort {short_size}
    Padding {target_size [W, H] | N, im_padding_value}   bottom-right, before or after Normalize
    Deploy.to_rgb: false                  the network takes BGR (Compose's to_rgb)
    Deploy.output_op                      argmax | softmax | none (the program's own output decides when it says)

A program saved with a fixed ``[1, 3, H, W]`` input (``tools/export.py --input_shape``) only runs at that size: the
image is resized to it (or padded up to it after a ``keep_ratio``/long/short resize), and :func:`restore` crops the
padding off again so that labels map back onto the image.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import DeployError
from zoo.registry.spec import InputSpec

if TYPE_CHECKING:
    import numpy as np

    from zoo.formats.program import Signature

READ = ("Normalize", "NormalizeImage", "Resize", "ResizeByLong", "ResizeByShort", "Padding")


def load(folder: Path) -> dict[str, Any]:
    """The ``Deploy`` table of ``folder/deploy.yaml`` ({} when there is none)."""
    import yaml

    path = folder / "deploy.yaml"
    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DeployError(f"{path} is not readable YAML ({exc}); fix or remove it") from None
    deploy = doc.get("Deploy") if isinstance(doc, dict) else None
    if not isinstance(deploy, dict):
        raise DeployError(f"{path} has no 'Deploy' table; is it PaddleSeg's export deploy.yaml?")
    return deploy


def input_spec(deploy: dict[str, Any], signature: Signature | None = None, where: str = "deploy.yaml") -> InputSpec:
    """The preprocessing ``deploy``'s transforms describe, fitted to the program's fixed input size if it has one."""
    if isinstance(deploy.get("input"), dict):  # zoo's own exports write their InputSpec
        spec = InputSpec.from_dict(deploy["input"])
    else:
        spec = _from_transforms(deploy.get("transforms") or [], where)
        if deploy.get("to_rgb") is False:
            spec = replace(spec, color="BGR")
    if signature is not None:
        spec = replace(spec, name=signature.input_name)
        if signature.fixed_size:
            spec = fit_fixed(spec, signature.fixed_size, where)
    return spec


def _three(values: Any, what: str, where: str) -> tuple[float, float, float]:
    vals = [float(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    if len(vals) == 1:
        vals *= 3
    if len(vals) != 3:
        raise DeployError(f"{where}: {what} has {len(vals)} values; zoo runs 3-channel images")
    return (vals[0], vals[1], vals[2])


def _size(target: Any, what: str, where: str) -> tuple[int, int]:
    """PaddleSeg's [W, H] (or one int) as zoo's (H, W)."""
    if isinstance(target, int) and not isinstance(target, bool):
        return (target, target)
    if isinstance(target, (list, tuple)) and len(target) == 2 and all(isinstance(v, int) and v > 0 for v in target):
        return (int(target[1]), int(target[0]))
    raise DeployError(f"{where}: {what} target_size must be [W, H], got {target!r}")


def _from_transforms(transforms: list[Any], where: str) -> InputSpec:
    values: dict[str, Any] = {}
    normalized = False
    pad_after: float | None = None
    for t in transforms:
        kind = t.get("type") if isinstance(t, dict) else None
        if kind in ("Normalize", "NormalizeImage"):
            values["mean"] = _three(t.get("mean", 0.5), f"{kind}.mean", where)
            values["std"] = _three(t.get("std", 0.5), f"{kind}.std", where)
            if any(s == 0 for s in values["std"]):
                raise DeployError(f"{where}: {kind}.std has a zero")
            values["scale"] = 1.0 / 255.0 if t.get("is_scale", True) else 1.0
            normalized = True
        elif kind == "Resize":
            if t.get("interp", "LINEAR") != "LINEAR" or t.get("size_divisor"):
                raise DeployError(f"{where}: Resize with interp {t.get('interp')!r} / size_divisor is not supported; "
                                  "zoo reads interp LINEAR")  # fmt: skip
            values.update(size_policy="resize", size=_size(t.get("target_size", [512, 512]), "Resize", where),
                          keep_ratio=bool(t.get("keep_ratio", False)))  # fmt: skip
        elif kind in ("ResizeByLong", "ResizeByShort"):
            key = "long_size" if kind == "ResizeByLong" else "short_size"
            n = t.get(key)
            if not isinstance(n, int) or n <= 0 or (kind == "ResizeByShort" and t.get("max_size") not in (None, 1e10)):
                raise DeployError(f"{where}: {kind}.{key} must be a positive integer (max_size is not supported)")
            values.update(size_policy="long" if kind == "ResizeByLong" else "short", size=(n, n))
        elif kind == "Padding":
            values["pad"] = _size(t.get("target_size"), "Padding", where)
            pad = float(t.get("im_padding_value", 127.5))
            if normalized:
                pad_after = pad
            else:
                values["pad_value"] = (pad, pad, pad)
        else:
            raise DeployError(f"{where}: transform {kind!r} is not one zoo reads ({', '.join(READ)}); "
                              "export the model with those val transforms, or preprocess images yourself")  # fmt: skip
    spec = InputSpec(**values)
    if pad_after is not None:  # padded after Normalize: the same value in pixel units, per channel
        spec = replace(spec, pad_value=tuple((pad_after * s + m) / spec.scale for m, s in zip(spec.mean, spec.std)))
    return spec


def fit_fixed(spec: InputSpec, size: tuple[int, int], where: str = "deploy.yaml") -> InputSpec:
    """``spec`` made to end at the program's one input size (H, W)."""
    if spec.pad is not None:
        if spec.pad != size:
            raise DeployError(f"{where}: Padding goes to {list(spec.pad)} (H, W) but the program takes {list(size)}")
        return spec
    if spec.size_policy == "keep":
        return replace(spec, size_policy="resize", size=size)
    if spec.size_policy == "resize" and not spec.keep_ratio:
        if spec.size != size:
            raise DeployError(f"{where}: Resize goes to {list(spec.size or ())} (H, W) but the program takes "
                              f"{list(size)}; export it again with a matching --input_shape")  # fmt: skip
        return spec
    return replace(spec, pad=size)  # keep_ratio, long or short: pad the rest up to the fixed size


def needs_geometry(spec: InputSpec) -> bool:
    """Whether ``spec`` resizes or pads (the plain "keep" policy runs at the image's size)."""
    return spec.size_policy != "keep" or spec.pad is not None


def resized_size(spec: InputSpec, h: int, w: int) -> tuple[int, int]:
    """(H, W) an ``h`` x ``w`` image has after ``spec``'s resize (before padding)."""
    if spec.size_policy == "resize" and spec.size:
        th, tw = spec.size
        if not spec.keep_ratio:
            return th, tw
        scale = min(max(th, tw) / max(h, w), min(th, tw) / min(h, w))  # PaddleSeg's rescale_size
        return round(h * scale), round(w * scale)
    if spec.size_policy in ("long", "short") and spec.size:
        side = max(h, w) if spec.size_policy == "long" else min(h, w)
        scale = spec.size[0] / side
        return round(h * scale), round(w * scale)
    return h, w


def preprocess(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` → float32 ``[1, 3, h, w]`` as PaddleSeg's Compose does it: float pixels, resized
    bilinearly, padded bottom-right, then ``(x * scale - mean) / std``."""
    import cv2
    import numpy as np

    img = rgb[:, :, ::-1] if spec.color.upper() == "BGR" else rgb
    img = img.astype(np.float32)
    h, w = resized_size(spec, img.shape[0], img.shape[1])
    if (h, w) != img.shape[:2]:
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    if spec.pad is not None:
        ph, pw = spec.pad
        if h > ph or w > pw:
            raise DeployError(f"the image is {h}x{w} after resizing, larger than the {ph}x{pw} it is padded to")
        value = spec.pad_value[::-1] if spec.color.upper() == "BGR" else spec.pad_value
        img = cv2.copyMakeBorder(img, 0, ph - h, 0, pw - w, cv2.BORDER_CONSTANT, value=tuple(float(v) for v in value))
    if spec.scale == 1.0 / 255.0:
        img /= 255.0  # PaddleSeg's own order of operations, so the numbers are its numbers
    else:
        img *= np.float32(spec.scale)
    img -= np.asarray(spec.mean)
    img /= np.asarray(spec.std)
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=spec.dtype)


def restore(output: np.ndarray, spec: InputSpec, size: tuple[int, int]) -> np.ndarray:
    """The model's output mapped back towards the image of ``size`` (H, W) as PaddleSeg's ``reverse_transform`` does:
    the padding :func:`preprocess` added cropped off, and class ids resized with Paddle's nearest rule (scores are
    left to the caller's bilinear resize)."""
    import numpy as np

    if not needs_geometry(spec):
        return output
    if spec.pad is not None:
        h, w = resized_size(spec, size[0], size[1])
        output = output[..., :h, :w]
    if np.issubdtype(output.dtype, np.integer) and output.shape[-2:] != tuple(size):
        rows = _nearest(output.shape[-2], size[0])
        cols = _nearest(output.shape[-1], size[1])
        output = output[..., rows[:, None], cols[None, :]]
    return output


def _nearest(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output index of Paddle's ``interpolate(mode="nearest")``: ``int(float32(in / out) * k)``,
    in float32 as its CPU kernel computes it (OpenCV's INTER_NEAREST rounds differently on exact multiples)."""
    import numpy as np

    ratio = np.float32(n_in) / np.float32(n_out)
    return np.minimum((ratio * np.arange(n_out, dtype=np.float32)).astype(np.int64), n_in - 1)
