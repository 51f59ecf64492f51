"""The tuned choice of a model: what ``zoo tune`` proved fastest on this machine, stored beside the model in the cache.

One JSON file per model, ``$ZOO_HOME/cache/tuned/<name>.json``, holds the chosen configuration (backend, precision,
threads, runner options), the full candidate table, the criteria it was chosen by, and the fingerprint it is valid
for: the machine (CPU model and flags, core count), the versions of zoo and of each backend's engine, and the model
(the Paddle model's cache key and the sha256 of the file the choice runs). This module stores and reads the file;
:mod:`zoo.registry.tuning` computes the fingerprint (it asks the backend registry) and says whether a record is
valid here. Bundles carry the file as it is, so an importing machine uses it only if its own fingerprint matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import NotCachedError
from zoo.store import cache

SCHEMA = 1
FOLDER = "tuned"  # under the cache root, beside models/ and onnx/
VARIANT = "tuned"  # what `zoo cache rm NAME --variant tuned` names


@dataclass(frozen=True)
class Choice:
    """A configuration to run a model with."""

    backend: str  # a registered backend's name
    precision: str  # fp32, bf16, fp16, int8
    threads: int | None = None  # intra-op threads; None: the runner's default (one per core)
    options: tuple[tuple[str, Any], ...] = ()  # runner options, e.g. (("allow_spinning", 1),)

    @property
    def key(self) -> str:
        """``backend/precision`` plus what differs from the runner's defaults, e.g. ``onnx/fp32 t2 spin``."""
        text = f"{self.backend}/{self.precision}"
        if self.threads:
            text += f" t{self.threads}"
        for name, value in self.options:
            text += f" {OPTION_LABELS.get((name, value), f'{name}={value}')}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, "threads": self.threads,
                "options": dict(self.options), "key": self.key}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Choice:
        return cls(str(d["backend"]), str(d["precision"]), d.get("threads"),
                   tuple(sorted((d.get("options") or {}).items())))  # fmt: skip


OPTION_LABELS = {("allow_spinning", 1): "spin", ("allow_spinning", 0): "nospin"}


@dataclass(frozen=True)
class Record:
    """A stored tuning result (the file's content, with the choice parsed)."""

    name: str  # model name
    choice: Choice  # what zoo run & co. use
    tuned_at: str  # ISO date-time (UTC) the tune finished
    speedup_vs_paddle: float | None  # chosen fastest ÷ best float32 Paddle fastest (below 1: faster)
    agreement: float | None  # the chosen configuration's label agreement with float32 Paddle
    doc: dict[str, Any]  # the whole record as stored (fingerprint, criteria, candidates)

    def summary(self) -> str:
        """``openvino/bf16, tuned 2026-12-05: 0.41× float32 Paddle, 99.70% labels``."""
        text = f"{self.choice.key}, tuned {self.tuned_at[:10]}"
        parts = []
        if self.speedup_vs_paddle is not None:
            parts.append(f"{self.speedup_vs_paddle:.2f}× float32 Paddle")
        if self.agreement is not None:
            parts.append(f"{self.agreement:.2%} labels")
        return text + (": " + ", ".join(parts) if parts else "")

    def as_dict(self) -> dict[str, Any]:
        """What run/bench/eval JSON say about the tuned choice."""
        return {"choice": self.choice.as_dict(), "tuned_at": self.tuned_at, "ratio_vs_paddle_fp32": self.speedup_vs_paddle,
                "agreement": self.agreement, "summary": self.summary()}  # fmt: skip


def path(name: str) -> Path:
    return cache.root() / FOLDER / f"{cache.check_name(name)}.json"


def write(name: str, doc: dict[str, Any]) -> Path:
    """Store a tuning record (atomically; the previous one is replaced)."""
    target = path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    cache.atomic_write_json(target, {"schema": SCHEMA, **doc})
    return target


def forget(name: str) -> list[Path]:
    """Remove ``name``'s tuning record; NotCachedError if there is none."""
    target = path(name)
    if not target.is_file():
        raise NotCachedError(f"model '{name}' has no tuned choice to forget; 'zoo info {name}' shows what it has")
    target.unlink()
    return [target]


def load_doc(name: str) -> dict[str, Any] | None:
    """The stored record as written, or None (none, or unreadable)."""
    return load_doc_from(path(name))


def load_doc_from(target: Path) -> dict[str, Any] | None:
    """A record file's content, or None when it is missing or not a tuning record."""
    if not target.is_file():
        return None
    try:
        doc = cache.read_json(target)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == SCHEMA and "choice" in doc else None
