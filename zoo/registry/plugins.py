"""Architecture plugins, discovered through the ``zoo.architectures`` entry-point group.

The built-in architectures are registered exactly like third-party ones (see pyproject.toml). A plugin that fails to
import, is not an :class:`~zoo.registry.spec.Architecture`, or reuses a name is recorded as broken — reported by
``zoo plugins`` — and never stops other commands. ``ZOO_PLUGINS`` restricts which plugins load.

Discovery is the registry mechanism :mod:`zoo.registry.entrypoints` shared with the backends: one scan of the
installed distributions, each plugin imported on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from zoo import config
from zoo.errors import PluginError
from zoo.registry.entrypoints import Found, Group
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


def _record(found: Found) -> Plugin:
    return Plugin(found.name, found.value, found.distribution, found.version, found.spec, found.error)


REGISTRY: Group[Plugin] = Group(GROUP, Architecture, "architecture", config.plugin_allowlist, _record)


def discover() -> list[Plugin]:
    """Every allowed plugin of the group, each loaded once per process; failures become records with an error."""
    return REGISTRY.discover()


def reset() -> None:
    """Forget what was discovered (the next call scans again): for tests that install plugins at run time."""
    REGISTRY.reset()


def architectures() -> dict[str, Architecture]:
    """Loaded architectures by name."""
    return {p.name: p.architecture for p in discover() if p.architecture is not None}


def get_architecture(name: str) -> Architecture:
    """The loaded architecture ``name``, or a PluginError saying why it is not available."""
    plugins = REGISTRY.load(name)  # imports this plugin only
    if plugins and plugins[0].architecture is not None:
        return plugins[0].architecture
    if plugins:
        raise PluginError(f"plugin '{name}' failed to load: {plugins[0].error}")
    allow = config.plugin_allowlist()
    if allow is not None and name not in allow:
        raise PluginError(f"architecture '{name}' is excluded by ZOO_PLUGINS={','.join(sorted(allow))}; add it there")
    known = ", ".join(REGISTRY.names()) or "none"
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
