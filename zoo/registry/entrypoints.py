"""The one registry mechanism behind zoo's plugin groups (``zoo.architectures``, ``zoo.backends``).

Entry points are recorded as dotted paths (``"module:attribute"``) from one scan of the installed distributions and
imported on first use: asking for one name imports that plugin only, listing them all imports each once. A name
given twice is an error on the second (zoo's own built-in wins, then distributions alphabetically); a plugin that
fails to import, is not the group's spec class, or names itself differently becomes a record with the reason and the
install hint — it never breaks zoo, whatever it raises (SystemExit and KeyboardInterrupt at import included). An
allow-list (``ZOO_PLUGINS``, ``ZOO_BACKENDS``) restricts which names are seen at all.

The scan and the loaded records are memoised per ``sys.path``, so code that adds a folder of plugins at run time (as
the tests do) is seen.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Found:
    """One entry point of a group, loaded or not."""

    name: str  # entry-point name (== the spec's name when loaded)
    value: str  # "module:attribute" the entry point names
    distribution: str | None  # the installed distribution providing it
    version: str | None  # that distribution's version
    spec: Any | None  # the loaded spec; None when it failed to load
    error: str | None = None  # why it failed to load


_SCANS: dict[tuple[str, ...], Any] = {}  # sys.path → every entry point installed there


def scan(group: str) -> list[Any]:
    """The entry points of one group, from the one scan of installed distributions this process makes."""
    key = tuple(sys.path)
    if key not in _SCANS:
        _SCANS.clear()  # sys.path changed (tests add plugin folders): keep only the scan of the current one
        _SCANS[key] = entry_points()
    return list(_SCANS[key].select(group=group))


def dist_of(ep: Any) -> tuple[str | None, str | None]:
    """(distribution name, version) of an entry point, when known."""
    dist = getattr(ep, "dist", None)
    return (dist.metadata["Name"], dist.version) if dist is not None else (None, None)


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


class Group(Generic[R]):
    """One entry-point group whose plugins each publish a spec of one class.

    ``allow()`` gives the allowed names (None: all); ``check(spec)`` may raise ValueError for a spec that is the right
    class but unusable; ``record(found)`` turns each :class:`Found` into what the group's module hands out.
    """

    def __init__(self, group: str, cls: type, kind: str, allow: Callable[[], set[str] | None],
                 record: Callable[[Found], R], check: Callable[[Any], None] | None = None):  # fmt: skip
        self.group, self.cls, self.kind = group, cls, kind
        self.allow, self.record, self.check = allow, record, check
        self._loaded: dict[tuple[Any, ...], R] = {}  # (sys.path, name, value, distribution) → its record

    def entries(self) -> list[Any]:
        """Allowed entry points, not imported, by name; for a name given twice zoo's own built-in first."""
        allow = self.allow()
        eps = [ep for ep in scan(self.group) if allow is None or ep.name in allow]
        return sorted(eps, key=_precedence)

    def names(self) -> tuple[str, ...]:
        """Every allowed entry-point name, sorted (nothing is imported)."""
        return tuple(sorted({ep.name for ep in self.entries()}))

    def load(self, name: str) -> list[R]:
        """The records of entry points called ``name``, the one that counts first (each imported on first use)."""
        return self._records([ep for ep in self.entries() if ep.name == name])

    def discover(self) -> list[R]:
        """Every allowed plugin's record, loaded or broken."""
        return self._records(self.entries())

    def reset(self) -> None:
        """Forget every scan and load (tests that install plugins at run time)."""
        _SCANS.clear()
        self._loaded.clear()

    def _records(self, eps: list[Any]) -> list[R]:
        out: list[R] = []
        first: dict[str, tuple[str, str | None]] = {}
        for ep in eps:
            dist, version = dist_of(ep)
            if ep.name in first:  # known from the scan alone: the duplicate is never imported
                value, owner = first[ep.name]
                error = (f"duplicate {self.kind} name '{ep.name}': {ep.value} ({dist}) and {value} ({owner}); "
                         "uninstall one of them")  # fmt: skip
                out.append(self.record(Found(ep.name, ep.value, dist, version, None, error)))
                continue
            first[ep.name] = (ep.value, dist)
            key = (tuple(sys.path), ep.name, ep.value, dist)
            if key not in self._loaded:
                self._loaded[key] = self.record(self._load_one(ep, dist, version))
            out.append(self._loaded[key])
        return out

    def _load_one(self, ep: Any, dist: str | None, version: str | None) -> Found:
        try:
            spec = load_spec(ep, self.cls, self.kind)
            if self.check is not None:
                self.check(spec)
        except BaseException as exc:  # noqa: BLE001 - a plugin raising anything (even SystemExit) must not break zoo
            hint = f"reinstall or upgrade {dist}" if dist else "reinstall the plugin"
            return Found(ep.name, ep.value, dist, version, None, f"{type(exc).__name__}: {exc} — {hint}")
        return Found(ep.name, ep.value, dist, version, spec)


def _precedence(ep: Any) -> tuple[str, bool, str]:
    """Sort by name; for a name given twice, zoo's own built-in comes first, then distributions alphabetically."""
    dist = dist_of(ep)[0] or ""
    return (ep.name, dist != "zoo", dist)
