"""Whether a model's tuned choice (:mod:`zoo.store.tuned`) is valid here: the fingerprint it was tuned for — this
machine (CPU model and flags, core count), the versions of zoo and of each backend's engine, the model (the Paddle
model's cache key and the sha256 of the file the choice runs) — compared with today's. A record that no longer
matches is *stale* and is ignored with a note (run ``zoo tune NAME``). It lives in the registry layer because the
versions and formats come from the backend registry; the file itself is the store's."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.store import cache
from zoo.store.tuned import Choice, Record, load_doc

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle


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
    from zoo.store import artifacts

    ref = cache.get_ref(name)
    ident: dict[str, Any] = {artifacts.ROOT: (ref.get(artifacts.ROOT) or {}).get("key")}  # the Paddle model's key
    try:
        formats = backends.get(choice.backend).formats
    except Exception:  # a backend that is gone: the versions part already differs
        formats = ()
    if "onnx" in formats:
        variant = cache.variant_for(choice.precision)
        ident[variant] = (ref.get(variant) or {}).get("sha256")
    return ident
