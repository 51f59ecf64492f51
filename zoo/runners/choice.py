"""What a model runs with: explicit flags, else its tuned choice (``zoo tune``) when valid here, else onnx/fp32.

:func:`choose` is the one place this is decided; :func:`zoo.runners.runtime.load` calls it whenever ``backend`` or
``precision`` is left None, and so do ``zoo run``, ``zoo eval``, ``zoo bench`` (its default row) and ``zoo.load``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


class TunedWarning(UserWarning):
    """A model's tuned choice is stale (the machine, a version or the model changed), so the defaults run."""


@dataclass(frozen=True)
class Selection:
    """The configuration a model runs with, and whether ``zoo tune`` chose it."""

    backend: str  # a registered backend's name
    precision: str  # fp32, bf16, fp16, int8
    threads: int | None  # intra-op threads (None: one per core)
    options: dict[str, Any] = field(default_factory=dict)  # runner options the tuned choice sets
    tuned: Any = None  # the zoo.store.tuned.Record it came from, when it did
    note: str | None = None  # why a tuned choice was ignored (stale), for the one-line summary

    def as_dict(self) -> dict[str, Any]:
        """What --json outputs say: the configuration and, when tuned, the record's summary."""
        return {"backend": self.backend, "precision": self.precision, "threads": self.threads,
                "options": self.options, "tuned": self.tuned.as_dict() if self.tuned else None,
                "note": self.note}  # fmt: skip

    def describe(self) -> str:
        """One line: ``openvino/bf16, tuned 2026-12-05: 0.41× float32 Paddle, 99.70% labels`` or ``onnx/fp32``."""
        return self.tuned.summary() if self.tuned else f"{self.backend}/{self.precision}"


def choose(model: Any, backend: str | None = None, precision: str | None = None,
           threads: int | None = None) -> Selection:  # fmt: skip
    """The one place that decides what runs: explicit ``backend``/``precision`` always win; with neither, a
    registered model's tuned choice (``zoo tune``) if it is valid on this machine; else the defaults (onnx, fp32).
    An explicit ``threads`` wins over the tuned one too."""
    from zoo.registry import backends as registered, catalog
    from zoo.registry.catalog import as_path

    if backend is None and precision is None:
        handle = model if isinstance(model, catalog.ModelHandle) else None
        if handle is None and not isinstance(model, os.PathLike) and as_path(model) is None:
            handle = catalog.resolve(str(model))
        if handle is not None:
            from zoo.registry import tuning

            record, note = tuning.status(handle)
            if record is not None:
                c = record.choice
                return Selection(c.backend, c.precision, threads or c.threads, dict(c.options), record)
            return Selection(registered.default_backend().name, "fp32", threads, note=note)
    return Selection(backend or registered.default_backend().name, precision or "fp32", threads)
