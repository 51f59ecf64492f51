"""The command that re-creates a cached model's format, from what its ref records about where it came from.

Every "run this to fix it" in an error about a damaged or missing cache entry comes from here, so the advice is a
command that really rebuilds that entry: a pulled archive is pulled again, an export is exported again with the same
weights, seed and output op, a conversion is converted again, a published ONNX file is pulled again, a variant is
made again by the command the artifact table (zoo/store/artifacts.py) names, with the settings it was made with.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from zoo.store import artifacts, cache

DEFAULT_OPSET = 11  # zoo.make.convert's default (not imported: that module imports onnx helpers)


def command(name: str, fmt: str) -> str:
    """``zoo ...`` that rebuilds ``name``'s ``fmt`` entry (any kind of zoo/store/artifacts.py), replacing a damaged one:
    a variant is made again with the settings its provenance records."""
    kind = artifacts.get(fmt)
    rec = cache.get_ref(name).get(fmt) or {}
    rec = rec if isinstance(rec, dict) else {}
    source = rec.get("source")
    quoted = shlex.quote(name)
    if fmt == "onnx":
        if source == "onnx":
            return f"zoo pull {quoted} --format onnx --force"
        opset = rec.get("opset")
        return f"zoo convert {quoted} --force" + (f" --opset {opset}" if opset not in (None, DEFAULT_OPSET) else "")
    if kind.derives_from is not None:
        settings = rec.get("settings")
        return kind.make_command(name, settings if isinstance(settings, dict) else None)
    if source == "export":
        random = rec.get("weights") == "random"
        weights = "random" if random else shlex.quote(str(rec.get("weights_url") or ""))
        parts = [f"zoo export {quoted} --weights {weights}"]
        if random and rec.get("seed") not in (None, 0):
            parts.append(f"--seed {rec['seed']}")
        if rec.get("output_op") not in (None, "argmax"):
            parts.append(f"--output-op {rec['output_op']}")
        if rec.get("format") == "model.pdmodel":
            parts.append("--legacy")
        return " ".join(parts)
    if source == "weights":
        return f"zoo pull {quoted} --from weights --force"
    return f"zoo pull {quoted} --force"


def advice(name: str, fmt: str) -> str:
    """``run '<command>'`` for messages."""
    return f"run '{command(name, fmt)}'"


def remakers(name: str) -> dict[str, str]:
    """The command remaking each derived artifact ``name`` has now: taken before a new Paddle model replaces the one
    they were made from (which drops them), so :func:`dropped` can say how to get them back."""
    return {kind: command(name, kind) for kind in cache.variants(name)}


def dropped(name: str, before: dict[str, str]) -> str:
    """One line naming the derived artifacts gone since ``before`` (:func:`remakers`) and how to remake them; ""
    when none went."""
    gone = [kind for kind in before if kind not in cache.variants(name)]
    if not gone:
        return ""
    again = ", ".join(f"'{before[kind]}'" for kind in gone)
    return (f"{name}: dropped {', '.join(gone)} (made from the Paddle model this one replaces); "
            f"run {again} to make {'it' if len(gone) == 1 else 'them'} again")  # fmt: skip


def for_problems(problems: list) -> str:
    """The commands that fix what ``zoo cache verify`` found (housekeeping.Problem: path, names), one per entry."""
    commands: list[str] = []
    for problem in problems:
        try:
            top = problem.path.relative_to(cache.root()).parts[0]
        except (ValueError, IndexError):
            top = ""
        if not problem.names and top in (*artifacts.FOLDERS, "blobs") and problem.kind != "missing":
            # no model uses it ('zoo cache prune' would remove it too, but only once it is a minute old)
            doomed = problem.path if top == "blobs" else cache.root().joinpath(*problem.path.relative_to(
                cache.root()).parts[:2])  # fmt: skip
            command_ = f"rm -r {shlex.quote(str(doomed))}"
            if command_ not in commands:
                commands.append(command_)
            continue
        for name in problem.names:
            command_ = command(name, _kind_at(name, problem.path, top))
            if command_ not in commands:
                commands.append(command_)
    if not commands:
        return "run 'zoo cache prune' (it removes leftovers and entries no model uses)"
    return "; ".join(f"run '{c}'" for c in commands)


def _kind_at(name: str, path: Path, top: str) -> str:
    """Which of ``name``'s artifacts a damaged ``path`` belongs to: the kind whose entry holds it (for a blob: the
    kind whose record cites it)."""
    ref = cache.get_ref(name)
    records = {k: r for k, r in ref.items() if k in artifacts.KINDS and isinstance(r, dict)}
    if top == "blobs":
        digest = "sha256:" + path.name
        return next((k for k, r in records.items() if digest in str(r)), artifacts.ROOT)
    parts = path.relative_to(cache.root()).parts
    key = parts[1] if len(parts) > 1 else ""
    owners = [k for k, r in records.items() if artifacts.KINDS[k].folder == top and str(r.get("key")) == key]
    return owners[-1] if owners else (artifacts.FOLDERS.get(top) or artifacts.ROOT)


def refused_download(exc: Exception, blob: Path, url: str) -> Exception:
    """The error about a downloaded file zoo refused and deleted, retold about its URL, on one line: no path to a blob
    that is gone, no 'pull --force' (it would fetch the same bytes)."""
    from zoo.store import archive

    text = " ".join(str(exc).split()).replace(str(blob), url)
    text = text.replace(archive.REFETCH, "").rstrip(" —;,.")
    return type(exc)(
        f"{text}; nothing was kept — the file at that URL is not a usable model: report it to whoever maintains the "
        "registry entry, or get the model another way (--mirror DIR|URL, or 'zoo bundle import FILE')"
    )
