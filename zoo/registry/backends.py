"""Backend plugins, discovered through the ``zoo.backends`` entry-point group (the built-ins too, see pyproject.toml).

A backend is a module-level :class:`~zoo.registry.spec.Backend`; its runner (``"module:callable"``) is imported only when a
model is opened, so ``zoo plugins`` and the CLI's ``--backend`` choices cost no engine import. A backend that fails to
load, is not a Backend, reuses a name, or lacks a module it ``requires`` is listed with the reason and how to get it —
it never breaks the others. ``ZOO_BACKENDS`` restricts which load. Discovery runs once per process.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import config
from zoo.errors import BackendError
from zoo.registry.spec import Backend

GROUP = "zoo.backends"
DEFAULT = "onnx"  # what `zoo run` and zoo.load use when no backend is named


@dataclass(frozen=True)
class BackendPlugin:
    """One entry point of the group, loaded or not."""

    name: str  # entry-point name (== Backend.name when loaded)
    value: str  # "module:attribute" the entry point names
    distribution: str | None  # the installed distribution providing it
    version: str | None  # that distribution's version
    backend: Backend | None  # None when it failed to load
    error: str | None = None  # why it failed to load, or why it cannot run here (a required module is missing)

    @property
    def usable(self) -> bool:
        """Loaded, and everything it requires is importable."""
        return self.backend is not None and self.error is None

    def as_dict(self) -> dict[str, Any]:
        b = self.backend
        return {
            "name": self.name, "entry_point": self.value, "distribution": self.distribution, "version": self.version,
            "loaded": b is not None, "usable": self.usable, "error": self.error,
            "summary": b.summary if b else None, "formats": list(b.formats) if b else None,
            "devices": list(b.devices) if b else None, "precisions": list(b.precisions) if b else None,
            "runner": b.runner if b else None, "install": b.install if b else None,
        }  # fmt: skip


_FOUND: dict[tuple[tuple[str, ...], frozenset[str] | None], list[BackendPlugin]] = {}


def discover() -> list[BackendPlugin]:
    """Every allowed backend plugin, loaded or broken (once per process and sys.path)."""
    allow = config.backend_allowlist()
    key = (tuple(sys.path), frozenset(allow) if allow is not None else None)
    if key not in _FOUND:
        _FOUND[key] = _discover(allow)
    return list(_FOUND[key])


def reset() -> None:
    """Forget what was discovered (tests that install backends at run time)."""
    _FOUND.clear()


def _discover(allow: set[str] | None) -> list[BackendPlugin]:
    from zoo.registry.plugins import load_group

    def record(ep: Any, dist: str | None, version: str | None, backend: Any, error: str | None) -> BackendPlugin:
        if backend is not None:  # loaded: usable only when what its runner imports is installed
            missing = [m for m in backend.requires if not _importable(m)]
            if missing:
                error = f"needs {', '.join(missing)}, which is not installed — {backend.install or 'install it'}"
        return BackendPlugin(ep.name, ep.value, dist, version, backend, error)

    return load_group(GROUP, allow, "backend", _load_one, record)


def _load_one(ep: Any) -> Backend:
    from zoo.registry.plugins import load_spec

    obj = load_spec(ep, Backend, "backend")
    if not obj.formats or ":" not in obj.runner:
        raise ValueError(f"backend '{obj.name}' needs formats and a runner 'module:callable', got {obj.runner!r}")
    return obj


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def names() -> tuple[str, ...]:
    """Names of every loaded backend (usable or not), sorted: what ``--backend`` accepts."""
    return tuple(sorted(p.name for p in discover() if p.backend is not None))


def get(name: str) -> Backend:
    """The usable backend ``name``, or a BackendError saying why not and what to do."""
    plugins = discover()
    for plugin in plugins:
        if plugin.name == name and plugin.backend is not None:
            if plugin.error:
                raise BackendError(f"backend '{name}' cannot run here: {plugin.error}")
            return plugin.backend
    for plugin in plugins:
        if plugin.name == name:
            raise BackendError(f"backend '{name}' failed to load: {plugin.error}")
    allow = config.backend_allowlist()
    if allow is not None and name not in allow:
        raise BackendError(f"backend '{name}' is excluded by ZOO_BACKENDS={','.join(sorted(allow))}; add it there")
    known = ", ".join(names()) or "none"
    raise BackendError(f"unknown backend '{name}'; choose one of: {known} (see 'zoo plugins')")


def open_runner(backend: Backend, model_path: Path, *, device: str = "cpu", threads: int | None = None,
                precision: str = "fp32", options: dict[str, Any] | None = None) -> Any:  # fmt: skip
    """Import the backend's runner and open ``model_path`` with it.

    ``options`` (runner settings ``zoo tune`` chose, e.g. ONNX Runtime's spinning) are passed only when given, so
    runners that take none keep the plain contract of :class:`~zoo.registry.spec.Backend`."""
    if device not in backend.devices:
        raise BackendError(
            f"unknown device '{device}' for backend '{backend.name}'; choose one of: {', '.join(backend.devices)}"
        )
    if precision not in backend.precisions:
        raise BackendError(
            f"backend '{backend.name}' runs {', '.join(backend.precisions)}, not '{precision}'; "
            "pick another --precision or --backend"
        )
    module_name, _, attr = backend.runner.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise BackendError(
            f"cannot import runner {backend.runner} of backend '{backend.name}': {exc}; {backend.install or 'reinstall it'}"
        ) from exc
    extra = {"options": dict(options)} if options else {}
    return factory(Path(model_path), device=device, threads=threads, precision=precision, **extra)
