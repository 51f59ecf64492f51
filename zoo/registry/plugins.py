"""Architecture plugins, discovered through the ``zoo.architectures`` entry-point group.

The built-in architectures are registered exactly like third-party ones (see pyproject.toml). A plugin that fails to
import, is not an :class:`~zoo.registry.spec.Architecture`, or reuses a name is recorded as broken — reported by
``zoo plugins`` — and never stops other commands. ``ZOO_PLUGINS`` restricts which plugins load.

Entry points are scanned once per process (:func:`group`, shared with :mod:`zoo.backends`) and each plugin is loaded
once: a scan reads every installed distribution's metadata. The memo is keyed by ``sys.path``, so code that adds a
folder of plugins at run time (as the tests do) is seen.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from zoo import config
from zoo.errors import PluginError
from zoo.registry.spec import Architecture

GROUP = "zoo.architectures"


@dataclass(frozen=True)
class Plugin:
    """One entry point of the group, loaded or not."""

    name: str  # entry-point name (== Architecture.name when loaded)
    value: str  # "module:attribute" the entry point names
    distribution: str | None  # the installed distribution providing it
    version: str | None  # that distribution's version
    architecture: Architecture | None  # None when it failed to load
    error: str | None = None  # why it failed to load

    def as_dict(self) -> dict[str, Any]:
        arch = self.architecture
        return {
            "name": self.name,
            "entry_point": self.value,
            "distribution": self.distribution,
            "version": self.version,
            "loaded": arch is not None,
            "error": self.error,
            "summary": arch.summary if arch else None,
            "builder": arch.builder if arch else None,
            "num_labels": len(arch.labels) if arch else None,
        }


def load_spec(ep: Any, cls: type, kind: str) -> Any:
    """The spec an entry point publishes (an instance of ``cls``, or a callable returning one), named as the entry
    point is; TypeError or ValueError otherwise."""
    obj = ep.load()
    if callable(obj) and not isinstance(obj, cls):
        obj = obj()
    if not isinstance(obj, cls):
        raise TypeError(f"{ep.value} is a {type(obj).__name__}, not a zoo.registry.spec.{cls.__name__}")
    if obj.name != ep.name:
        raise ValueError(f"entry point '{ep.name}' names {kind} '{obj.name}'; they must match")
    return obj


def load_group(name: str, allow: set[str] | None, kind: str, load: Callable[[Any], Any],
               record: Callable[[Any, str | None, str | None, Any, str | None], Any]) -> list[Any]:  # fmt: skip
    """Every allowed entry point of group ``name`` loaded with ``load`` and turned into ``record(ep, distribution,
    version, spec, error)``; a duplicate name or a failure to load becomes a record with the error (a broken plugin
    must never break zoo)."""
    found: list[Any] = []
    seen: dict[str, Any] = {}
    for ep in sorted(group(name), key=_precedence):
        if allow is not None and ep.name not in allow:
            continue
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        dist_version = dist.version if dist is not None else None
        if ep.name in seen:
            first = seen[ep.name]
            error = (f"duplicate {kind} name '{ep.name}': {ep.value} ({dist_name}) and {first.value} "
                     f"({first.distribution}); uninstall one of them")  # fmt: skip
            found.append(record(ep, dist_name, dist_version, None, error))
            continue
        try:
            spec = load(ep)
        except BaseException as exc:  # a broken plugin must never break zoo, even one that calls sys.exit()
            hint = f"reinstall or upgrade {dist_name}" if dist_name else "reinstall the plugin"
            plugin = record(ep, dist_name, dist_version, None, f"{type(exc).__name__}: {exc} — {hint}")
        else:
            plugin = record(ep, dist_name, dist_version, spec, None)
        seen[ep.name] = plugin
        found.append(plugin)
    return found


def _precedence(ep: Any) -> tuple[str, bool, str]:
    """Sort by name; for a name given twice, zoo's own built-in comes first, then distributions alphabetically."""
    dist = getattr(ep, "dist", None)
    dist_name = dist.metadata["Name"] if dist is not None else ""
    return (ep.name, dist_name != "zoo", dist_name)


_SCANS: dict[tuple[str, ...], Any] = {}  # sys.path → every entry point installed there
_FOUND: dict[tuple[tuple[str, ...], frozenset[str] | None], list[Plugin]] = {}  # (sys.path, ZOO_PLUGINS) → plugins


def group(name: str) -> list[Any]:
    """The entry points of one group, from the one scan of installed distributions this process makes."""
    key = tuple(sys.path)
    if key not in _SCANS:
        _SCANS.clear()  # sys.path changed (tests add plugin folders): keep only the scan of the current one
        _SCANS[key] = entry_points()
    return list(_SCANS[key].select(group=name))


def reset() -> None:
    """Forget what was discovered (the next call scans again): for tests that install plugins at run time."""
    _SCANS.clear()
    _FOUND.clear()


def discover() -> list[Plugin]:
    """Load every allowed plugin of the group (once per process); failures become records with an error."""
    allow = config.plugin_allowlist()
    key = (tuple(sys.path), frozenset(allow) if allow is not None else None)
    if key not in _FOUND:
        _FOUND[key] = _discover(allow)
    return list(_FOUND[key])


def _discover(allow: set[str] | None) -> list[Plugin]:
    def load(ep: Any) -> Architecture:
        return load_spec(ep, Architecture, "architecture")

    def record(ep: Any, dist: str | None, version: str | None, arch: Any, error: str | None) -> Plugin:
        return Plugin(ep.name, ep.value, dist, version, arch, error)

    return load_group(GROUP, allow, "architecture", load, record)


def architectures() -> dict[str, Architecture]:
    """Loaded architectures by name."""
    return {p.name: p.architecture for p in discover() if p.architecture is not None}


def get_architecture(name: str) -> Architecture:
    """The loaded architecture ``name``, or a PluginError saying why it is not available."""
    plugins = discover()
    for plugin in plugins:
        if plugin.name == name and plugin.architecture is not None:
            return plugin.architecture
    for plugin in plugins:
        if plugin.name == name:
            raise PluginError(f"plugin '{name}' failed to load: {plugin.error}")
    allow = config.plugin_allowlist()
    if allow is not None and name not in allow:
        raise PluginError(f"architecture '{name}' is excluded by ZOO_PLUGINS={','.join(sorted(allow))}; add it there")
    known = ", ".join(sorted(p.name for p in plugins)) or "none"
    raise PluginError(
        f"no plugin provides architecture '{name}' (installed: {known}); "
        f"install one (e.g. pip install zoo-{name}) and check with 'zoo plugins'"
    )


def load_builder(arch: Architecture):
    """Import the architecture's network builder (this imports paddle)."""
    if not arch.builder:
        raise PluginError(f"architecture '{arch.name}' has no network builder; it can only use published models")
    module_name, _, attr = arch.builder.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"cannot import builder {arch.builder} of '{arch.name}': {exc}; reinstall the plugin") from exc
