"""Backend plugins, discovered through the ``zoo.backends`` entry-point group (the built-ins too, see pyproject.toml).

A backend is a module-level :class:`~zoo.registry.spec.Backend`; its runner (``"module:callable"``) is imported only when a
model is opened, so ``zoo plugins`` and the CLI's ``--backend`` choices cost no engine import. A backend that fails to
load, is not a Backend, reuses a name, or lacks a module it ``requires`` is listed with the reason and how to get it —
it never breaks the others. ``ZOO_BACKENDS`` restricts which load. Discovery is the mechanism of
:mod:`zoo.registry.entrypoints`, shared with the architectures.

Roles come from the specs, so nothing outside a backend's own module names it: the backend marked ``default`` runs
when none is named, the one marked ``reference`` is what ``zoo verify`` judges others against and what ``zoo bench``
computes speed-ups from.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import config
from zoo.errors import BackendError
from zoo.registry.entrypoints import Found, Group
from zoo.registry.spec import Backend

GROUP = "zoo.backends"


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
            "default": b.default if b else None, "reference": b.reference if b else None,
        }  # fmt: skip


def _check(backend: Backend) -> None:
    if not backend.formats or ":" not in backend.runner:
        raise ValueError(f"backend '{backend.name}' needs formats and a runner 'module:callable', got {backend.runner!r}")


def _record(found: Found) -> BackendPlugin:
    error = found.error
    if found.spec is not None:  # loaded: usable only when what its runner imports is installed
        missing = [m for m in found.spec.requires if not _importable(m)]
        if missing:
            error = f"needs {', '.join(missing)}, which is not installed — {found.spec.install or 'install it'}"
    return BackendPlugin(found.name, found.value, found.distribution, found.version, found.spec, error)


REGISTRY: Group[BackendPlugin] = Group(GROUP, Backend, "backend", config.backend_allowlist, _record, _check)


def discover() -> list[BackendPlugin]:
    """Every allowed backend plugin, loaded or broken (each imported once per process and sys.path)."""
    return REGISTRY.discover()


def reset() -> None:
    """Forget what was discovered (tests that install backends at run time)."""
    REGISTRY.reset()


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
    plugins = REGISTRY.load(name)  # imports this backend's spec only
    if plugins and plugins[0].backend is not None:
        if plugins[0].error:
            raise BackendError(f"backend '{name}' cannot run here: {plugins[0].error}")
        return plugins[0].backend
    if plugins:
        raise BackendError(f"backend '{name}' failed to load: {plugins[0].error}")
    allow = config.backend_allowlist()
    if allow is not None and name not in allow:
        raise BackendError(f"backend '{name}' is excluded by ZOO_BACKENDS={','.join(sorted(allow))}; add it there")
    known = ", ".join(names()) or "none"
    raise BackendError(f"unknown backend '{name}'; choose one of: {known} (see 'zoo plugins')")


def open_runner(backend: Backend, model_path: Path, *, device: str = "cpu", threads: int | None = None,
                precision: str = "fp32") -> Any:  # fmt: skip
    """Import the backend's runner and open ``model_path`` with it."""
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
    return factory(Path(model_path), device=device, threads=threads, precision=precision)


def default_backend() -> Backend:
    """The backend that runs when none is named: the one whose spec says ``default``."""
    return _role("default")


def reference_backend() -> Backend:
    """The exact float32 engine others are compared with: the one whose spec says ``reference``."""
    return _role("reference")


def default_pair() -> tuple[str, str]:
    """(reference, candidate) ``zoo verify`` compares unless told otherwise: the reference and the default backend."""
    return reference_backend().name, default_backend().name


def for_format(fmt: str) -> Backend:
    """A backend that runs model format ``fmt``: the default if it does, else the reference, else the first usable."""
    usable = [p.backend for p in discover() if p.usable and p.backend is not None and fmt in p.backend.formats]
    for role in ("default", "reference"):
        found = next((b for b in usable if getattr(b, role)), None)
        if found is not None:
            return found
    if not usable:
        raise BackendError(f"no installed backend runs {fmt} models; see 'zoo plugins'")
    return usable[0]


def _role(role: str) -> Backend:
    """The loaded backend claiming ``role`` (zoo's own first, then by name); with none claiming it — ZOO_BACKENDS
    left it out — the first usable backend (else loaded), so a restricted install still runs."""
    loaded = [p for p in discover() if p.backend is not None]
    claims = sorted((p for p in loaded if getattr(p.backend, role)), key=lambda p: (p.distribution != "zoo", p.name))
    chosen = claims or [p for p in loaded if p.usable] or loaded
    if not chosen:
        raise BackendError("no backend is loaded (none installed, or ZOO_BACKENDS excludes them all); see 'zoo plugins'")
    return chosen[0].backend  # type: ignore[return-value]
