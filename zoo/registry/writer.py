"""Write one ``[models.NAME]`` table into a registry file, atomically, keeping the rest of the file as it was.

The new text is parsed and validated (:func:`zoo.registry.entries.parse_file`) before it replaces the file, so a
registry is never left half-written or invalid; the user's comments and other entries stay byte for byte.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from zoo.errors import RegistryError


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if isinstance(v, int) or v != int(v) or abs(v) >= 1e16 else f"{v:.1f}"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def table_text(name: str, keys: dict[str, Any], artifacts: dict[str, dict[str, Any]]) -> str:
    """``[models."NAME"]`` with ``keys`` (None values left out), then one sub-table per artifact."""
    lines = [f'[models."{name}"]']
    lines += [f"{k} = {_value(v)}" for k, v in keys.items() if v is not None]
    for kind, table in artifacts.items():
        lines += ["", f'[models."{name}".{kind}]']
        lines += [f"{k} = {_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def _header_of(line: str, name: str) -> bool | None:
    """True: a table header of model ``name``; False: another table header; None: not a header."""
    m = re.match(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", line)
    if not m:
        return None
    parts = [p.strip().strip('"').strip("'") for p in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', m.group(1))]
    return len(parts) >= 2 and parts[0] == "models" and parts[1] == name


def without(text: str, name: str) -> str:
    """``text`` with every ``[models.NAME...]`` table removed."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        header = _header_of(line, name)
        if header is not None:
            inside = header
        if not inside:
            out.append(line)
    return "".join(out)


def defines(path: Path, name: str) -> bool:
    """Whether the registry file at ``path`` has a ``[models.NAME]`` table."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return isinstance(doc.get("models"), dict) and name in doc["models"]


def write_entry(path: Path, name: str, table: str) -> None:
    """Put ``table`` (from :func:`table_text`) into the registry file ``path`` in place of any table of ``name``."""
    from zoo.registry import entries
    from zoo.store import cache

    old = path.read_text(encoding="utf-8") if path.is_file() else "schema = 1\n"
    try:
        tomllib.loads(old)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError([f"{path}: TOML syntax error: {exc}; fix it before 'zoo add' writes to it"]) from None
    kept = without(old, name).rstrip("\n")
    new = (kept + "\n\n" if kept else "") + table
    probe = path.with_name(f".{path.name}.check.toml")
    try:
        cache.atomic_write(probe, new.encode("utf-8"))
        got, _ = entries.parse_file(probe)  # a RegistryError here leaves the real file untouched
        if name not in {e.name for e in got}:
            raise RegistryError([f"{path}: the new [models.{name}] table did not parse back; nothing was written"])
    finally:
        probe.unlink(missing_ok=True)
    cache.atomic_write(path, new.encode("utf-8"))
