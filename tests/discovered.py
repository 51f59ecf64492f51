"""What tests parametrize over: the plugins discovery finds, and — as an oracle for the built-ins — what
pyproject.toml declares and the packaged registry.toml lists (read here with tomllib, not through zoo).

Tests take their architecture and backend lists from here, never from a list typed beside them, so a plugin added
to pyproject.toml is tested without editing a test.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from zoo.registry import backends, plugins

ROOT = Path(__file__).resolve().parents[1]


def declared(group: str) -> dict[str, str]:
    """``name -> "module:attribute"`` of the entry points zoo's pyproject.toml declares in ``group``."""
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return dict(doc["project"]["entry-points"][group])


def packaged_models() -> list[str]:
    """The model names of zoo's packaged registry.toml, in file order."""
    doc = tomllib.loads((ROOT / "zoo" / "registry" / "registry.toml").read_text(encoding="utf-8"))
    return list(doc["models"])


def builtin_architectures() -> list[str]:
    """The architectures discovery loads from zoo's own distribution, sorted."""
    return sorted(p.name for p in plugins.discover() if p.architecture is not None and p.distribution == "zoo")


def usable_backends() -> list[str]:
    """Every backend discovery finds usable here, sorted."""
    return sorted(p.name for p in backends.discover() if p.usable)


BUILTIN_ARCHITECTURES = builtin_architectures()
