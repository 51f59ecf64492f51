"""The command that re-creates a cached model's format, from what its ref records about where it came from.

Every "run this to fix it" in an error about a damaged or missing cache entry comes from here, so the advice is a
command that really rebuilds that entry: a pulled archive is pulled again, an export is exported again with the same
weights, seed and output op, a conversion is converted again, a published ONNX file is pulled again.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from zoo.store import cache

DEFAULT_OPSET = 11  # zoo.make.convert's default (not imported: that module imports onnx helpers)


def command(name: str, fmt: str) -> str:
    """``zoo ...`` that rebuilds ``name``'s ``fmt`` ("paddle" or "onnx") entry, replacing a damaged one."""
    rec = cache.get_ref(name).get(fmt) or {}
    source = rec.get("source")
    quoted = shlex.quote(name)
    if fmt == "onnx":
        if source == "onnx":
            return f"zoo pull {quoted} --format onnx --force"
        opset = rec.get("opset")
        return f"zoo convert {quoted} --force" + (f" --opset {opset}" if opset not in (None, DEFAULT_OPSET) else "")
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


def for_problems(problems: list) -> str:
    """The commands that fix what ``zoo cache verify`` found (housekeeping.Problem: path, names), one per entry."""
    commands: list[str] = []
    for problem in problems:
        try:
            top = problem.path.relative_to(cache.root()).parts[0]
        except (ValueError, IndexError):
            top = ""
        if not problem.names and top in ("models", "onnx", "blobs") and problem.kind != "missing":
            # no model uses it ('zoo cache prune' would remove it too, but only once it is a minute old)
            doomed = problem.path if top == "blobs" else cache.root().joinpath(*problem.path.relative_to(
                cache.root()).parts[:2])  # fmt: skip
            command_ = f"rm -r {shlex.quote(str(doomed))}"
            if command_ not in commands:
                commands.append(command_)
            continue
        for name in problem.names:
            fmt = "onnx" if top == "onnx" else "paddle"
            if top == "blobs":  # the artifact of whichever format cites this blob
                ref = cache.get_ref(name)
                digest = "sha256:" + problem.path.name
                fmt = next((f for f in ("onnx", "paddle") if digest in str(ref.get(f, {}))), "paddle")
            command_ = command(name, fmt)
            if command_ not in commands:
                commands.append(command_)
    if not commands:
        return "run 'zoo cache prune' (it removes leftovers and entries no model uses)"
    return "; ".join(f"run '{c}'" for c in commands)


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
