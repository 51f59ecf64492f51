"""What a model file says about itself (``zoo.*`` ONNX metadata, deploy.yaml's ``input``), checked before any use.

Metadata is whatever the file's author wrote: every value is checked for type and size (a resize to 100000x100000,
num_classes 10**12, a mean of "abc") so that nothing reaches an allocation or a preprocessing step unchecked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.errors import ConversionError
from zoo.registry.spec import InputSpec
from zoo.util import first_line


def checked(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """Decoded ``zoo.*`` metadata → {architecture, output_op, input, labels, palette, num_classes}, each checked;
    ConversionError naming the key whose value is unusable."""
    key = "metadata"
    try:
        if isinstance(raw.get("metadata"), Exception):
            raise raw["metadata"]
        meta: dict[str, Any] = {k: str(raw[k]) for k in ("architecture", "output_op") if raw.get(k)}
        if raw.get("input") is not None:
            key = "input"
            meta["input"] = input_spec(raw["input"])
        if raw.get("labels"):
            key = "labels"
            meta["labels"] = _labels(raw["labels"])
        if raw.get("palette"):
            key = "palette"
            meta["palette"] = tuple(_colour(c) for c in _bounded_list(raw["palette"]))
        if raw.get("num_classes"):
            key = "num_classes"
            meta["num_classes"] = _count(raw["num_classes"])
        return meta
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError, OverflowError) as exc:
        raise ConversionError(
            f"{path}: its {'zoo.*' if key == 'metadata' else 'zoo.' + key} metadata is unusable ({type(exc).__name__}: "
            f"{first_line(exc)[:200]}); make the "
            "file again with 'zoo convert', or remove its zoo.* metadata_props"
        ) from None


def _bounded_list(value: Any) -> list[Any]:
    from zoo.registry.entries import MAX_CLASSES

    if not isinstance(value, list) or len(value) > MAX_CLASSES:
        raise ValueError(f"expected a list of at most {MAX_CLASSES} items, got {type(value).__name__}")
    return value


def _labels(value: Any) -> tuple[str, ...]:
    names = _bounded_list(value)
    if not all(isinstance(n, str) for n in names):
        raise TypeError("labels must be strings")
    return tuple(names)


def _colour(value: Any) -> tuple[int, int, int]:
    if not (isinstance(value, list) and len(value) == 3 and all(_whole(v) and 0 <= v <= 255 for v in value)):
        raise ValueError(f"a colour is 3 integers 0-255, got {str(value)[:40]}")
    return int(value[0]), int(value[1]), int(value[2])


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(value: Any) -> int:
    from zoo.registry.entries import MAX_CLASSES

    if not (_whole(value) and 0 < value <= MAX_CLASSES):
        raise ValueError(f"num_classes must be an integer 1-{MAX_CLASSES}, got {str(value)[:40]}")
    return value


def _numbers(value: Any, what: str) -> tuple[float, float, float]:
    import math

    if not (isinstance(value, list) and len(value) == 3 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):  # fmt: skip
        raise ValueError(f"{what} must be 3 finite numbers, got {str(value)[:60]}")
    return float(value[0]), float(value[1]), float(value[2])


def input_spec(d: Any) -> InputSpec:
    """An InputSpec from metadata, every field checked (types, and a resize size within the image caps)."""
    import math

    from zoo.images import MAX_SIDE

    if not isinstance(d, dict):
        raise TypeError(f"expected an object, got {type(d).__name__}")
    known = InputSpec.__dataclass_fields__
    values = {k: v for k, v in d.items() if k in known}
    choices = {"layout": ("NCHW", "NHWC"), "color": ("RGB", "BGR"), "size_policy": ("keep", "resize", "long", "short"),
               "dtype": ("float32", "float16", "uint8")}  # fmt: skip
    for key, allowed in choices.items():
        if key in values and values[key] not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {str(values[key])[:40]!r}")
    if "name" in values and not isinstance(values["name"], str):
        raise TypeError("name must be a string")
    for key in ("mean", "std", "pad_value"):
        if values.get(key) is not None:
            values[key] = _numbers(values[key], key)
    if "keep_ratio" in values and not isinstance(values["keep_ratio"], bool):
        raise TypeError("keep_ratio must be true or false")
    if values.get("std") is not None and 0.0 in values["std"]:
        raise ValueError("std must not hold 0")
    for key in ("size", "pad"):
        if values.get(key) is not None:
            size = values[key]
            if not (isinstance(size, list) and len(size) == 2 and all(_whole(v) and 0 < v <= MAX_SIDE for v in size)):
                raise ValueError(f"{key} must be [H, W], each 1-{MAX_SIDE}, got {str(size)[:60]}")
            values[key] = (size[0], size[1])
    if "scale" in values:
        scale = values["scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive number, got {str(scale)[:40]}")
        values["scale"] = float(scale)
    return InputSpec(**values)
