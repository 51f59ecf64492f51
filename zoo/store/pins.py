"""Trust on first use: the sha256 and size of each unpinned artifact's first download.

The lock file is ``cache.lock_file()`` (``<cache>/zoo.lock``): a JSON object mapping pin ids
(``"<model name>/<artifact kind>"``, e.g. ``"fcn/inference"``) to entries::

    {"fcn/inference": {"sha256": "sha256:<hex>", "size": 123, "url": "https://...", "recorded": "2025-01-01T00:00:00Z"}}

A bundle (and a mirror folder) carries a file of the same format, so ``load_file`` reads either, and ``load_all()``
serialised with ``json.dumps`` is a valid lock file. Writes go through ``cache.atomic_write_json`` under a
``zoo.store.locks`` lock in ``cache.locks_dir()``, so concurrent writers never lose each other's entries. A recorded hash
is never silently replaced: ``record`` and ``merge`` raise IntegrityError on a conflict, and re-pinning means deleting
the entry by hand.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoo.store import cache
from zoo.errors import IntegrityError
from zoo.util import SHA256 as _SHA256
from zoo.util import now as _now


def get(pin_id: str) -> dict[str, Any] | None:
    """The recorded entry of ``pin_id`` ({"sha256", "size", "url", "recorded"}), or None."""
    return load_all().get(pin_id)


def load_all() -> dict[str, dict[str, Any]]:
    """Every entry of the local lock file ({} when there is none)."""
    return load_file(cache.lock_file())


def load_file(path: Path) -> dict[str, dict[str, Any]]:
    """Entries of any lock file (local, bundle or mirror); {} if it does not exist. IntegrityError if malformed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return parse(text, str(path))


def parse(text: str, where: str) -> dict[str, dict[str, Any]]:
    """Validate lock file text; ``where`` names it in messages."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise IntegrityError(
            f"{where} is not valid JSON ({exc}); fix it, or delete it to re-pin every artifact"
        ) from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{where} must hold a JSON object of pin entries; fix it or delete it")
    return {pin_id: _checked(entry, f"{where}: {pin_id!r}") for pin_id, entry in doc.items()}


def record(pin_id: str, sha256: str, size: int, url: str) -> None:
    """Pin ``pin_id`` to a download's hash and size. Same hash again: no-op; a different one: IntegrityError."""
    entry = _checked({"sha256": sha256, "size": size, "url": url, "recorded": _now()}, pin_id)
    with _locked() as pins:
        old = pins.get(pin_id)
        if old is not None:
            if old["sha256"] != sha256:
                raise IntegrityError(_conflict(pin_id, old["sha256"], sha256))
            return
        pins[pin_id] = entry
        cache.atomic_write_json(cache.lock_file(), pins)


def merge(entries: dict[str, dict[str, Any]]) -> None:
    """Add pins carried by a bundle or mirror. All or nothing: any conflicting hash raises IntegrityError."""
    checked = {pin_id: _checked(entry, f"{pin_id!r}") for pin_id, entry in entries.items()}
    with _locked() as pins:
        conflicts = [
            _conflict(pin_id, pins[pin_id]["sha256"], entry["sha256"])
            for pin_id, entry in sorted(checked.items())
            if pin_id in pins and pins[pin_id]["sha256"] != entry["sha256"]
        ]
        if conflicts:
            raise IntegrityError("; ".join(conflicts))
        new = {pin_id: entry for pin_id, entry in checked.items() if pin_id not in pins}
        if new:
            cache.atomic_write_json(cache.lock_file(), {**pins, **new})


def remove(pin_id: str) -> bool:
    """Forget the pin of ``pin_id`` (e.g. when its cache entry is removed); True if there was one."""
    with _locked() as pins:
        if pins.pop(pin_id, None) is None:
            return False
        cache.atomic_write_json(cache.lock_file(), pins)
        return True


@contextlib.contextmanager
def _locked() -> Iterator[dict[str, dict[str, Any]]]:
    from zoo.store import locks

    with locks.hold(cache.locks_dir() / "zoo.lock.lock"):
        yield load_all()


def _checked(entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise IntegrityError(f"{where}: a pin must be an object with 'sha256' and 'size'; fix or delete it")
    sha, size = entry.get("sha256"), entry.get("size")
    if not (isinstance(sha, str) and _SHA256.match(sha)):
        raise IntegrityError(f"{where}: 'sha256' must look like 'sha256:<64 lowercase hex>', got {sha!r}")
    if not (isinstance(size, int) and not isinstance(size, bool) and size >= 0):
        raise IntegrityError(f"{where}: 'size' must be a whole number of bytes, got {size!r}")
    return {"sha256": sha, "size": size, "url": str(entry.get("url", "")), "recorded": str(entry.get("recorded", ""))}


def _conflict(pin_id: str, pinned: str, other: str) -> str:
    return (
        f"'{pin_id}' is pinned to {pinned} but got {other}; if the change is legitimate, delete the "
        f"'{pin_id}' entry from {cache.lock_file()} and try again"
    )



