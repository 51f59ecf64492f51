"""Resolve a model name once: the registry files and plugins, loaded once per process, turn a name into a handle.

The edges — the CLI, :func:`zoo.load`, the public API — call :func:`resolve`; everything below them (pull, export,
convert, runtime, verify, bench, bundle) takes the :class:`ModelHandle` and never looks the name up again.

What is merged: the packaged registry, the user registry, ``ZOO_REGISTRY``, the files the CLI's ``--registry`` gave
(:func:`use_registries`), and the registries plugins ship. The merge is kept per process and redone only when one of
those inputs changes (a file's size or mtime, the environment, ``sys.path``), so a long-lived process still sees a
registry file it wrote itself.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.registry.spec import Architecture

if TYPE_CHECKING:
    from zoo.registry.entries import ModelEntry

_EXTRA: list[Path] = []  # registry files given on the command line (--registry), merged after ZOO_REGISTRY
_MEMO: dict[tuple[Any, ...], Catalog] = {}


@dataclass(frozen=True)
class ModelHandle:
    """A resolved model: its registry entry, its architecture, and where its cache refs live."""

    name: str  # the registry name (also the cache ref's name)
    entry: ModelEntry | None  # the merged registry entry; None when only the cache knows the name (see resolve)
    architecture: Architecture  # the plugin with the entry's own labels, palette and input over it (model_facts)
    num_classes: int  # classes it predicts: the entry's, else its labels'

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names by id, one per class (what legends and JSON name)."""
        names = tuple(self.architecture.labels)[: self.num_classes]
        return names + tuple(f"class_{i}" for i in range(len(names), self.num_classes))

    @property
    def palette(self) -> tuple[tuple[int, int, int], ...]:
        """RGB colour per class id, one per class."""
        return self.architecture.colors(self.num_classes)[: self.num_classes]
    ref_path: Path  # refs/<name>.json: which cache entries (Paddle model, ONNX variants) the name points to

    @property
    def arch_name(self) -> str:
        return self.architecture.name

    def ref(self) -> dict[str, Any]:
        """The ref as it is now (pull, export and convert change it; the handle stays valid)."""
        from zoo.store import cache

        return cache.get_ref(self.name)


@dataclass(frozen=True)
class Catalog:
    """Every model and architecture this process knows."""

    models: dict[str, ModelEntry]  # merged registry entries by name
    architectures: dict[str, Architecture]  # loaded architecture plugins by name

    def resolve(self, name: str) -> ModelHandle:
        """The handle of ``name``; UnknownModelError (with close matches) or PluginError if it cannot be run."""
        entry = self.models.get(name)
        if entry is None:
            return _unregistered(self, name)
        return _handle(self, entry)

    def knows(self, name: str) -> bool:
        return name in self.models


def use_registries(paths: list[Path]) -> None:
    """The registry files the command line gave (``zoo --registry FILE ...``), for the rest of the process."""
    _EXTRA[:] = [Path(p) for p in paths]


def extra_registries() -> list[Path]:
    """What :func:`use_registries` set (a child process is handed these)."""
    return list(_EXTRA)


def current() -> Catalog:
    """The catalog of this process (built on first use, rebuilt only when its inputs change)."""
    from zoo.registry import plugins, entries as registry

    plugins.discover()  # one entry-point scan; registry.load reuses it
    paths = registry.registry_paths(_EXTRA)
    key = (tuple(sys.path), os.environ.get("ZOO_PLUGINS"), tuple(_stamp(p) for p in paths))
    if key not in _MEMO:
        _MEMO.clear()
        _MEMO[key] = Catalog(registry.load(_EXTRA), plugins.architectures())
    return _MEMO[key]


def resolve(name: str) -> ModelHandle:
    """Resolve ``name`` in this process's catalog."""
    return current().resolve(name)


def handle(model: ModelHandle | str) -> ModelHandle:
    """A handle as it is, or a name resolved (for library functions the public API calls with a plain name)."""
    return model if isinstance(model, ModelHandle) else resolve(str(model))


def reset() -> None:
    """Forget the merged registries and --registry files (tests)."""
    _MEMO.clear()
    _EXTRA.clear()


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
        return (str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        return (str(path), -1, -1)


def _handle(catalog: Catalog, entry: ModelEntry) -> ModelHandle:
    """The handle of ``entry``: its plugin (if it names one) with the entry's own labels, palette and input over it."""
    from zoo.registry import model_facts, plugins
    from zoo.store import cache

    base = None
    if entry.architecture is not None:
        base = catalog.architectures.get(entry.architecture) or plugins.get_architecture(entry.architecture)
    if entry.num_classes is not None:  # bounded before anything is sized by it (a palette, a label list)
        classes_of(entry, base or Architecture(name=entry.name, summary="", labels=()))
    arch = model_facts.architecture_for(entry, base, entry.num_classes)
    num_classes = classes_of(entry, arch) if (entry.num_classes or arch.labels) else 1
    return ModelHandle(entry.name, entry, arch, num_classes, cache.ref_path(entry.name))


def _unregistered(catalog: Catalog, name: str) -> ModelHandle:
    """A name no registry defines: the model the cache describes
    (:func:`zoo.registry.remembered.cached_description`), else UnknownModelError with close matches."""
    import difflib

    from zoo.registry import entries, remembered
    from zoo.errors import UnknownModelError

    if (cached := remembered.cached_description(name)) is not None:  # cached, but its registry file is gone
        return _handle(catalog, entries.from_record(name, *cached))
    close = difflib.get_close_matches(name, list(catalog.models), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise UnknownModelError(f"unknown model '{name}'; {hint}run 'zoo list' to see the available models")


def classes_of(entry: ModelEntry, arch: Architecture) -> int:
    """How many classes a model predicts: the entry's, else its labels'; bounded, since arrays are sized by it (an
    entry rebuilt from a cached ref or a bundle was never checked as a registry file is)."""
    from zoo.errors import RegistryError
    from zoo.registry.entries import MAX_CLASSES

    n = entry.num_classes or len(arch.labels)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_CLASSES:
        raise RegistryError([f"{entry.source}: [models.{entry.name}]: num_classes must be between 1 and "
                             f"{MAX_CLASSES}, got {str(n)[:40]}"])  # fmt: skip
    return n


def as_path(name_or_path: str | os.PathLike[str]) -> Path | None:
    """The model path meant, or None for a registry name."""
    if isinstance(name_or_path, os.PathLike):
        return Path(name_or_path)
    text = str(name_or_path)
    if text.endswith(".onnx") or "/" in text or os.sep in text:
        return Path(text).expanduser()
    if Path(text).is_dir() and not current().knows(text):  # a folder, unless a registry name says otherwise
        return Path(text)
    return None


def resolve_target(model: str | os.PathLike[str] | ModelHandle) -> str | os.PathLike[str] | ModelHandle:
    """A registry name resolved once into its handle; a path (or a handle) as it is."""
    if isinstance(model, ModelHandle) or as_path(model) is not None:
        return model
    return resolve(str(model))
