"""The tuned choice of a model: what ``zoo tune`` proved fastest on this machine, stored beside the model in the cache.

One JSON file per model, ``$ZOO_HOME/cache/tuned/<name>.json``, holds the chosen configuration (backend, precision,
threads, runner options), the full candidate table, the criteria it was chosen by, and the fingerprint it is valid
for: the machine (CPU model and flags, core count), the versions of zoo and of each backend's engine, and the model
(the Paddle model's cache key and the sha256 of the file the choice runs). :func:`status` compares that fingerprint
with the current one; a record that no longer matches is *stale* and is ignored with a note (run ``zoo tune NAME``).
Bundles carry the file as it is, so an importing machine uses it only if its own fingerprint matches.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import NotCachedError
from zoo.store import cache

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle

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


def status(handle: ModelHandle | str) -> tuple[Record | None, str | None]:
    """(the record, None) when it is valid here; (None, a one-line note) when it is stale; (None, None) if none."""
    name = str(getattr(handle, "name", handle))
    doc = load_doc(name)
    if doc is None:
        return None, None
    choice = Choice.from_dict(doc["choice"])
    now = fingerprint(name, choice)
    changed = [k for k in ("machine", "versions", "model") if doc.get("fingerprint", {}).get(k) != now[k]]
    if changed:
        what = {"machine": "the machine", "versions": "zoo or a backend's version", "model": "the model"}
        return None, (f"the tuned choice of '{name}' ({choice.key}) is stale: {', '.join(what[c] for c in changed)} "
                      f"changed since it was tuned; ignoring it — run 'zoo tune {name}' again")  # fmt: skip
    summary = doc.get("summary") or {}
    return Record(name, choice, str(doc.get("tuned_at", "")), summary.get("speedup_vs_paddle"),
                  summary.get("agreement"), doc), None  # fmt: skip


def read(handle: ModelHandle | str) -> Record | None:
    """The valid tuning record of a model, or None (none, or stale: :func:`status` says why)."""
    return status(handle)[0]


# ---- fingerprint ----------------------------------------------------------------------------------------------------


def fingerprint(name: str, choice: Choice) -> dict[str, Any]:
    """What the record is valid for: this machine, these versions, this model (and the file the choice runs)."""
    return {"machine": machine(), "versions": versions(), "model": model_identity(name, choice)}


@functools.lru_cache(maxsize=1)
def machine() -> dict[str, Any]:
    """CPU model, a digest of its flags, and the core count."""
    model, flags = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.processor() or platform.machine()):
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = " ".join(sorted(value.split()))
    except OSError:  # not Linux: the platform's description is all there is
        pass
    digest = "sha256:" + hashlib.sha256(flags.encode()).hexdigest()[:16]
    return {"cpu": model, "flags": digest, "cores": os.cpu_count() or 1}


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """zoo's version and the installed version of what each usable backend requires."""
    from importlib import metadata

    from zoo.registry import backends

    def dist_version(module: str) -> str:
        for dist in (module, *metadata.packages_distributions().get(module, ())):
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        return "unknown"

    out = {"zoo": dist_version("zoo")}
    for plugin in backends.discover():
        if plugin.usable and plugin.backend is not None:
            out[plugin.name] = ",".join(f"{m} {dist_version(m)}" for m in plugin.backend.requires) or str(plugin.version)
    return out


def model_identity(name: str, choice: Choice) -> dict[str, Any]:
    """The Paddle model's cache key, and the sha256 of the ONNX variant the choice runs (when it runs one)."""
    from zoo.registry import backends

    ref = cache.get_ref(name)
    ident: dict[str, Any] = {"paddle": (ref.get("paddle") or {}).get("key")}
    try:
        formats = backends.get(choice.backend).formats
    except Exception:  # a backend that is gone: the versions part already differs
        formats = ()
    if "onnx" in formats:
        variant = cache.variant_for(choice.precision)
        ident[variant] = (ref.get(variant) or {}).get("sha256")
    return ident
