"""The plugin contract: what an architecture plugin tells zoo.

A plugin is a module-level :class:`Architecture` instance published under the ``zoo.architectures`` entry-point group.
Everything a runner needs to turn an image into a tensor and a label map back into pictures is here; the network
builder is a dotted path so that paddle is imported only when a model is actually built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.registry import presets
from zoo.registry.presets import CITYSCAPES_LABELS  # noqa: F401 - plugins import it from here

if TYPE_CHECKING:  # numpy stays out of `zoo list`
    import numpy as np


def pseudo_color_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """PaddleSeg's pseudo-colour map: class ``c`` gets the bit-interleaved colour of index ``c + 1``."""
    return presets.paddleseg_palette(n)


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes the network's input tensor."""

    name: str = "x"  # input tensor name in exported models
    layout: str = "NCHW"  # tensor layout the network takes
    color: str = "RGB"  # channel order the network expects (images are decoded as BGR, then converted)
    dtype: str = "float32"  # tensor dtype
    scale: float = 1.0 / 255.0  # pixels are multiplied by this first
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # then this is subtracted, per channel
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)  # then the result is divided by this
    size_policy: str = "keep"  # "keep": the image's own size; "resize" to `size`; "long"/"short": that side to size[0]
    size: tuple[int, int] | None = None  # (H, W) for "resize"; (L, L) for "long"/"short"
    keep_ratio: bool = False  # "resize" keeps the aspect ratio, fitting the image inside `size` (PaddleSeg's Resize)
    pad: tuple[int, int] | None = None  # (H, W): pad bottom and right up to this size after resizing
    pad_value: tuple[float, float, float] = (127.5, 127.5, 127.5)  # padding pixel value per channel, before scaling

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        """An InputSpec from its ``as_dict()`` form (JSON, TOML or YAML); unknown keys and None values are ignored."""
        known = cls.__dataclass_fields__
        values = {k: v for k, v in d.items() if k in known and v is not None}
        for key in ("mean", "std", "pad_value"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        for key in ("size", "pad"):
            if key in values:
                values[key] = tuple(int(v) for v in values[key])
        if "scale" in values:
            values["scale"] = float(values["scale"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "layout": self.layout, "color": self.color, "dtype": self.dtype,
            "scale": self.scale, "mean": list(self.mean), "std": list(self.std),
            "size_policy": self.size_policy, "size": list(self.size) if self.size else None,
            "keep_ratio": self.keep_ratio, "pad": list(self.pad) if self.pad else None,
            "pad_value": list(self.pad_value),
        }  # fmt: skip


@dataclass(frozen=True)
class Architecture:
    """One segmentation architecture, as a plugin describes it."""

    name: str  # the id registry entries use in `architecture = "..."`
    summary: str  # one line shown by `zoo plugins`
    input: InputSpec = field(default_factory=InputSpec)  # preprocessing the network was trained with
    labels: tuple[str, ...] = CITYSCAPES_LABELS  # class names; index = class id
    palette: tuple[tuple[int, int, int], ...] | None = None  # RGB per class; None: its labels' preset (Cityscapes
    # colours for Cityscapes names, presets.palette_of), else PaddleSeg's pseudo-colour map (preset "paddleseg")
    builder: str | None = None  # "module:function"; function(num_classes=...) returns a paddle.nn.Layer giving logits
    registries: tuple[str, ...] = ()  # paths of registry.toml files the plugin ships
    overlay_alpha: float = 0.5  # weight of the colour mask when blended over the image

    def colors(self, num_classes: int | None = None) -> tuple[tuple[int, int, int], ...]:
        """The RGB colour of each class id (at least ``num_classes`` of them)."""
        n = max(num_classes or 0, len(self.labels), 1)
        palette = self.palette if self.palette is not None else presets.palette_of(self.labels)
        if palette is not None and len(palette) >= n:
            return tuple(tuple(c) for c in palette)  # type: ignore[misc]
        base = pseudo_color_palette(max(n, 256))
        custom = tuple(tuple(c) for c in (palette or ()))
        return custom + base[len(custom) :]  # type: ignore[return-value]

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """Label map ``[H, W]`` → RGB colour mask ``[H, W, 3]`` uint8."""
        from zoo import postprocess

        return postprocess.colorize(labels, self.colors())

    def overlay(self, rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Blend the colour mask over an RGB image of the same size."""
        from zoo import postprocess

        return postprocess.overlay(rgb, self.colorize(labels), self.overlay_alpha)


@dataclass(frozen=True)
class Backend:
    """One inference engine, as a plugin describes it (entry-point group ``zoo.backends``).

    ``runner`` names a callable ``open_runner(model_path, *, device="cpu", threads=None, precision="fp32")`` returning
    an object with ``run(x: float32 [N, 3, H, W]) -> np.ndarray`` (the model's first output) and ``describe() -> dict``
    (what actually ran: engine, version, providers, threads, precision, options). It is imported only when used.
    """

    name: str  # what --backend takes: "onnx", "paddle", "openvino", ...
    summary: str  # one line for `zoo plugins`
    formats: tuple[str, ...]  # model formats it runs: "onnx" (an .onnx file), "paddle" (a Paddle model folder)
    runner: str  # "module:callable" returning a runner; imported only when a model is opened
    devices: tuple[str, ...] = ("cpu",)  # what --device may say
    precisions: tuple[str, ...] = ("fp32",)  # "fp32", "bf16", "fp16", "int8"
    requires: tuple[str, ...] = ()  # importable module names it needs; one missing → listed as unavailable
    install: str = ""  # how to get what it needs, e.g. "pip install 'zoo[openvino]'"
    default: bool = False  # runs when no backend is named (zoo run, zoo.load, eval; verify's candidate, bench's row)
    reference: bool = False  # the exact float32 engine: verify judges others against it, bench's speed-ups are its
