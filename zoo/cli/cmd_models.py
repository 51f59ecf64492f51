"""zoo list, info, plugins: what is known and what is installed. None of these imports numpy or paddle."""

from __future__ import annotations

import typer

from typing import TYPE_CHECKING

from zoo.registry import catalog, plugins
from zoo.store import cache
from zoo.cli._app import app, print_json, table

if TYPE_CHECKING:
    from zoo.registry.entries import ModelEntry


def _status(name: str) -> dict:
    """What the cache holds for a model, and whether its Paddle model is an untrained export."""
    ref = cache.get_ref(name)
    formats = cache.cached_formats(name)
    paddle = ref.get("paddle", {})
    return {
        "cached": formats,
        "untrained": bool(formats) and paddle.get("weights") == "random",
        "source": paddle.get("source"),
    }


@app.command("list")
def list_(json_: bool = typer.Option(False, "--json", help="Print a JSON array.")) -> None:
    """List the models of every registry, with what is cached."""
    entries = sorted(catalog.current().models.values(), key=lambda e: e.name)
    rows = [{**e.as_dict(), **_status(e.name)} for e in entries]
    if json_:
        print_json(rows)
        return
    lines = []
    for r in rows:
        cached = ",".join(r["cached"]) or "-"
        if r["untrained"]:
            cached += " (untrained)"
        miou = f"{r['miou']:.2f}" if r["miou"] is not None else "-"
        lines.append([r["name"], r["architecture"] or "-", r["dataset"] or "-", miou, cached])
    typer.echo(table(lines, ["NAME", "ARCHITECTURE", "DATASET", "MIOU", "CACHED"]))


@app.command()
def info(
    name: str = typer.Argument(..., help="Model name (see 'zoo list')."),
    json_: bool = typer.Option(False, "--json", help="Print a JSON object."),
) -> None:
    """Show one model's registry entry, input spec, labels, pinned hashes, provenance and cache state."""
    from zoo.store import pins

    known = catalog.current()
    entry = known.resolve(name).entry if not known.knows(name) else known.models[name]  # cached-only names too
    data = {**entry.as_dict(), **_status(name)}  # "source": where the cached model came from
    data["registry"] = entry.source  # the registry file that defines it
    try:
        handle = known.resolve(name)  # the plugin's defaults with the entry's own facts over them
        data["input"] = handle.architecture.input.as_dict()
        data["labels"] = list(handle.labels)
        data["palette"] = [list(c) for c in handle.palette]
        data["plugin_error"] = None
    except Exception as exc:  # show the entry even when its plugin is broken
        data["plugin_error"] = str(exc)
    ref = cache.get_ref(name)
    data["provenance"] = {k: v for k, v in ref.get("paddle", {}).items() if k != "entry"}
    data["pins"] = {kind: pins.get(f"{name}/{kind}") for kind in entry.artifacts}  # zoo.lock: trust on first use
    data["tuned"] = _tuned(name)
    if json_:
        print_json(data)
        return
    typer.echo("\n".join(_info_lines(entry, data)))


def _tuned(name: str) -> dict | None:
    """The tuned choice ('zoo tune'): valid here, or stale and why; None when there is none."""
    from zoo.registry import tuning
    from zoo.store import tuned

    record, note = tuning.status(name)
    if record is not None:
        return {"valid": True, **record.as_dict(), "note": None}
    if note is not None:
        return {"valid": False, "note": note, "choice": (tuned.load_doc(name) or {}).get("choice")}
    return None


def _info_lines(entry: ModelEntry, data: dict) -> list[str]:
    lines = [f"{entry.name}: {entry.summary}".rstrip(": ")]
    for key in ("architecture", "config", "dataset", "num_classes", "train_size", "miou", "license", "homepage"):
        if data.get(key) is not None:
            lines.append(f"  {key}: {data[key]}")
    if data.get("input"):
        spec = data["input"]
        size = "x".join(map(str, spec["size"])) if spec.get("size") else "any"
        scaled = "x / 255" if abs(spec["scale"] * 255 - 1) < 1e-6 else f"x * {spec['scale']:g}"
        lines.append(f"  input: {spec['color']} {spec['layout']} {spec['dtype']}, ({scaled} - mean) / std, "
                     f"mean {_floats(spec['mean'])}, std {_floats(spec['std'])}, size {size} ({spec['size_policy']})")  # fmt: skip
    if data.get("labels"):
        lines.append(f"  labels ({len(data['labels'])}): {', '.join(data['labels'])}")
    if data.get("ignore_index") is not None or data.get("reduce_zero_label"):
        lines.append(f"  evaluation: ignore_index {data.get('ignore_index', 255)}, "
                     f"reduce_zero_label {str(bool(data.get('reduce_zero_label'))).lower()}")  # fmt: skip
    for kind, art in entry.artifacts.items():
        for source in art.sources():  # each URL with where it is documented
            lines.append(f"  {kind}: {source['url']}" + (f"\n    documented: {source['docs']}" if source["docs"] else ""))
        pin = data["pins"].get(kind) or {}
        if art.sha256:
            sha = f"{art.sha256} (registry)"
        elif pin.get("sha256"):
            sha = f"{pin['sha256']} (zoo.lock, first download {pin.get('recorded', '?')})"
        else:
            sha = "unpinned (recorded in zoo.lock on the first download)"
        size = art.size or pin.get("size")
        lines.append(f"    sha256: {sha}" + (f", size {size}" if size else ""))
    cached = ", ".join(data["cached"]) or "nothing"
    lines.append(f"  cached: {cached}" + ("  (untrained weights)" if data["untrained"] else ""))
    prov = data["provenance"]
    if prov:
        keys = ("source", "url", "sha256", "weights", "weights_url", "seed", "output_op", "format", "paddle", "updated")
        lines.append("  provenance: " + ", ".join(f"{k} {prov[k]}" for k in keys if prov.get(k) is not None))
    tuned = data.get("tuned")
    if tuned:
        lines.append(f"  tuned: {tuned['summary']}" if tuned["valid"] else f"  tuned: STALE — {tuned['note']}")
    if data["plugin_error"]:
        lines.append(f"  plugin: {data['plugin_error']}")
    lines.append(f"  registry: {entry.source}")
    return lines


def _floats(values: list) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


@app.command("plugins")
def plugins_(json_: bool = typer.Option(False, "--json", help="Print a JSON array."),
             wide: bool = typer.Option(False, "--wide", help="Every column, however wide the terminal.")) -> None:
    """List architecture and backend plugins, including any that failed to load and why."""
    from zoo.registry import backends

    found = plugins.discover()
    engines = backends.discover()
    if json_:  # architectures as before; backends marked with "kind"
        print_json([{"kind": "architecture", **p.as_dict()} for p in found]
                   + [{"kind": "backend", **b.as_dict()} for b in engines])
        return
    rows = [
        [p.name, p.distribution or "-", p.version or "-", "ok" if p.architecture else f"BROKEN: {p.error}"]
        for p in found
    ]
    typer.echo(table(rows, ["NAME", "DISTRIBUTION", "VERSION", "STATUS"], optional=("VERSION",), wide=wide))
    rows = []
    for b in engines:
        status = "ok" if b.usable else (f"UNAVAILABLE: {b.error}" if b.backend else f"BROKEN: {b.error}")
        formats = ",".join(b.backend.formats) if b.backend else "-"
        rows.append([b.name, formats, b.distribution or "-", b.version or "-", status])
    typer.echo("\n" + table(rows, ["BACKEND", "FORMATS", "DISTRIBUTION", "VERSION", "STATUS"],
                             optional=("VERSION", "DISTRIBUTION"), wide=wide))  # fmt: skip
