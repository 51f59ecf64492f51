"""zoo list, info, plugins: what is known and what is installed. None of these imports numpy or paddle."""

from __future__ import annotations

import typer

from zoo import cache, catalog, plugins
from zoo.cli._app import app, print_json, table


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
        lines.append([r["name"], r["architecture"], r["dataset"] or "-", miou, cached])
    typer.echo(table(lines, ["NAME", "ARCHITECTURE", "DATASET", "MIOU", "CACHED"]))


@app.command()
def info(
    name: str = typer.Argument(..., help="Model name (see 'zoo list')."),
    json_: bool = typer.Option(False, "--json", help="Print a JSON object."),
) -> None:
    """Show one model's registry entry, plugin and cache state."""
    known = catalog.current()
    if not known.knows(name):
        known.resolve(name)  # UnknownModelError with close matches
    entry = known.models[name]
    data = {**entry.as_dict(), **_status(name)}
    try:
        arch = known.resolve(name).architecture
        data["input"] = arch.input.as_dict()
        data["labels"] = list(arch.labels)
        data["plugin_error"] = None
    except Exception as exc:  # show the entry even when its plugin is broken
        data["plugin_error"] = str(exc)
    ref = cache.get_ref(name)
    data["provenance"] = ref.get("paddle", {})
    if json_:
        print_json(data)
        return
    lines = [f"{entry.name}: {entry.summary}".rstrip(": ")]
    for key in ("architecture", "config", "dataset", "num_classes", "train_size", "miou", "license", "homepage"):
        if data.get(key) is not None:
            lines.append(f"  {key}: {data[key]}")
    for kind, art in entry.artifacts.items():
        pin = art.sha256 or "unpinned"
        lines.append(f"  {kind}: {art.urls[0]}" + (f" (+{len(art.urls) - 1} more)" if len(art.urls) > 1 else ""))
        lines.append(f"    sha256: {pin}" + (f", size {art.size}" if art.size else ""))
    cached = ", ".join(data["cached"]) or "nothing"
    lines.append(f"  cached: {cached}" + ("  (untrained weights)" if data["untrained"] else ""))
    if data["plugin_error"]:
        lines.append(f"  plugin: {data['plugin_error']}")
    lines.append(f"  registry: {entry.source}")
    typer.echo("\n".join(lines))


@app.command("plugins")
def plugins_(json_: bool = typer.Option(False, "--json", help="Print a JSON array.")) -> None:
    """List architecture and backend plugins, including any that failed to load and why."""
    from zoo import backends

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
    typer.echo(table(rows, ["NAME", "DISTRIBUTION", "VERSION", "STATUS"]))
    rows = []
    for b in engines:
        status = "ok" if b.usable else (f"UNAVAILABLE: {b.error}" if b.backend else f"BROKEN: {b.error}")
        formats = ",".join(b.backend.formats) if b.backend else "-"
        rows.append([b.name, formats, b.distribution or "-", b.version or "-", status])
    typer.echo("\n" + table(rows, ["BACKEND", "FORMATS", "DISTRIBUTION", "VERSION", "STATUS"]))
