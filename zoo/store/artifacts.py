"""What a model's cache holds: one table of artifact kinds, what each derives from, how it is made, what runs it.

::

    paddle ──(zoo pull, or zoo export from weights)──▶ models/<key>/
      └── onnx ──(zoo convert: paddle2onnx)──────────▶ onnx/<key>/model.onnx   (or pulled, when published)
            ├── onnx-int8 ──(zoo quantize --precision int8)──▶ onnx/<key>/model.onnx
            └── onnx-fp16 ──(zoo quantize --precision fp16)──▶ onnx/<key>/model.onnx

Every precision list, variant name, ``--precision`` help string and "run this to make it" hint comes from
:data:`KINDS`; adding a precision (or an engine cache such as a compiled OpenVINO or TensorRT blob: a kind with its
own folder and file format, derived from ``onnx``) is one more row here plus, for a new command, its maker in
zoo/make/ensure.py. zoo/make/ensure.py walks the ``derives_from`` chain; nothing else makes artifacts on demand.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zoo.errors import PrecisionError


@dataclass(frozen=True)
class Kind:
    """One kind of artifact a model can have in the cache."""

    name: str  # the ref key and variant name: "paddle", "onnx", "onnx-int8"
    folder: str  # folder under the cache root its entries live in: "models", "onnx"
    file_format: str  # what it is on disk; a backend reads it when its Backend.formats holds this ("paddle", "onnx")
    derives_from: str | None  # the kind it is made from; None: brought in by 'zoo pull' (or 'zoo export')
    command: str  # the zoo command that makes it from its parent (zoo/make/ensure.py maps it to the library call)
    args: tuple[str, ...]  # fixed arguments of that command for this kind, e.g. ("--precision", "int8")
    settings: tuple[tuple[str, Any], ...]  # options it is made with unless told otherwise, recorded as provenance
    tool: str  # what does the work, recorded as the provenance's "tool"
    precisions: tuple[str, ...]  # precisions a backend runs from it (bf16: an engine setting on a float32 file)
    automatic: bool  # ensure() makes it unasked; False: it changes the answers, so only an explicit command makes it

    def make_command(self, name: str, settings: Mapping[str, Any] | None = None) -> str:
        """The ``zoo ...`` line that makes this kind for ``name`` with ``settings`` (default: the kind's own)."""
        return "zoo " + self.make_args(name, settings)

    def make_args(self, name: str, settings: Mapping[str, Any] | None = None) -> str:
        """:meth:`make_command` without the leading ``zoo``."""
        chosen = dict(self.settings) if settings is None else dict(settings)
        words = [self.command, shlex.quote(name), *self.args]
        for option, value in chosen.items():
            if value is True:
                words.append(option)
            elif value not in (None, False, "", ()):
                text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
                words += [option, shlex.quote(text)]
        return " ".join(words)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("paddle", "models", "paddle", None, "pull", (), (), "zoo.make.pull", ("fp32", "bf16"), True),
        Kind("onnx", "onnx", "onnx", "paddle", "convert", (), (), "paddle2onnx", ("fp32", "bf16"), True),
        Kind("onnx-fp16", "onnx", "onnx", "onnx", "quantize", ("--precision", "fp16"), (),
             "onnxconverter_common.float16", ("fp16",), False),  # fmt: skip
        Kind("onnx-int8", "onnx", "onnx", "onnx", "quantize", ("--precision", "int8"), (("--calib-synthetic", 32),),
             "onnxruntime.quantization.quantize_static", ("int8",), False),  # fmt: skip
    )
}
ROOT = "paddle"  # the kind everything else derives from
PRECISIONS: tuple[str, ...] = tuple(dict.fromkeys(p for k in KINDS.values() for p in k.precisions))
PRECISION_HELP = "|".join(PRECISIONS)  # metavar of every --precision option
FOLDERS: dict[str, str] = {}  # folder under the cache root → the first kind stored there ("models": "paddle", ...)
for _kind in KINDS.values():
    FOLDERS.setdefault(_kind.folder, _kind.name)


def get(name: str) -> Kind:
    """The kind called ``name``; PrecisionError listing the kinds there are."""
    try:
        return KINDS[name]
    except KeyError:
        raise PrecisionError(f"'{name}' is not an artifact zoo makes; choose one of: {', '.join(KINDS)}") from None


def is_variant(name: str) -> bool:
    """Whether a ref key names a derived artifact ("onnx", "onnx-int8", ...), not the Paddle model."""
    return name in KINDS and KINDS[name].derives_from is not None


def check_precision(precision: str, backend: Any = None) -> str:
    """``precision`` if zoo makes it (and ``backend``, a zoo.registry.spec.Backend, runs it); else PrecisionError
    listing the valid ones."""
    if backend is not None and precision in backend.precisions:
        return precision  # zoo's own, or one the backend computes itself from a float32 file (a plugin's tf32)
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision '{precision}'; choose one of: {', '.join(PRECISIONS)}")
    if backend is not None:
        offered = [p for p in PRECISIONS if p in backend.precisions]
        raise PrecisionError(f"backend '{backend.name}' runs {', '.join(offered) or 'no precision zoo makes'}, not "
                             f"'{precision}'; pick another --precision or --backend")  # fmt: skip
    return precision


def kind_for(file_format: str, precision: str = "fp32") -> Kind:
    """The kind a backend reading ``file_format`` runs at ``precision`` (fp32 ONNX → "onnx", int8 → "onnx-int8")."""
    check_precision(precision)
    for kind in KINDS.values():
        if kind.file_format == file_format and precision in kind.precisions:
            return kind
    have = [p for k in KINDS.values() if k.file_format == file_format for p in k.precisions]
    raise PrecisionError(f"zoo makes no {file_format} model in {precision}; choose one of: {', '.join(have) or 'none'}")


def kind_for_backend(backend: Any, precision: str = "fp32") -> Kind:
    """The kind ``backend`` (a zoo.registry.spec.Backend) runs at ``precision``: the first of its formats zoo makes."""
    check_precision(precision, backend)
    for file_format in backend.formats:
        for kind in KINDS.values():
            if kind.file_format == file_format and precision in kind.precisions:
                return kind
    if precision not in PRECISIONS:  # the backend's own precision: it runs the float32 file its own way
        return kind_for_backend(backend, "fp32")
    raise PrecisionError(f"backend '{backend.name}' reads {', '.join(backend.formats)}, and zoo makes none of them in "
                         f"{precision}; choose one of: {', '.join(precisions_of(backend.formats))}")  # fmt: skip


def precisions_of(file_formats: Iterable[str]) -> tuple[str, ...]:
    """Every precision some kind of these file formats carries, in the table's order."""
    wanted = tuple(file_formats)
    return tuple(p for p in PRECISIONS if any(p in k.precisions for k in KINDS.values() if k.file_format in wanted))


def made_by(command: str) -> tuple[Kind, ...]:
    """The kinds one zoo command makes ("quantize": onnx-fp16, onnx-int8)."""
    return tuple(k for k in KINDS.values() if k.command == command)


def chain(name: str) -> list[Kind]:
    """The kinds from the root down to ``name``: ["paddle", "onnx", "onnx-int8"]."""
    kinds = [get(name)]
    while kinds[0].derives_from is not None:
        kinds.insert(0, get(kinds[0].derives_from))
    return kinds


def derived_from(name: str) -> list[Kind]:
    """Every kind made (directly or not) from ``name``, parents before children."""
    return [k for k in KINDS.values() if k.name != name and name in (c.name for c in chain(k.name))]
