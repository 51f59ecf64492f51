"""zoo list, info, plugins: what is known and what is installed. None of these imports numpy or paddle."""

from __future__ import annotations

import typer

from zoo import cache, plugins, registry
from zoo.cli._app import State, app, print_json, table


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
    entries = sorted(registry.load(State.registries).values(), key=lambda e: e.name)
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
    """Show one model's registry entry, input spec, labels, pinned hashes, provenance and cache state."""
    from zoo import pins

    entry = registry.get(name, State.registries)
    data = {**entry.as_dict(), **_status(name)}
    try:
        arch = plugins.get_architecture(entry.architecture)
        data["input"] = arch.input.as_dict()
        data["labels"] = list(arch.labels)
        data["plugin_error"] = None
    except Exception as exc:  # show the entry even when its plugin is broken
        data["plugin_error"] = str(exc)
    ref = cache.get_ref(name)
    data["provenance"] = {k: v for k, v in ref.get("paddle", {}).items() if k != "entry"}
    data["pins"] = {kind: pins.get(f"{name}/{kind}") for kind in entry.artifacts}  # zoo.lock: trust on first use
    if json_:
        print_json(data)
        return
    typer.echo("\n".join(_info_lines(entry, data)))


def _info_lines(entry: registry.ModelEntry, data: dict) -> list[str]:
    lines = [f"{entry.name}: {entry.summary}".rstrip(": ")]
    for key in ("architecture", "config", "dataset", "num_classes", "train_size", "miou", "license", "homepage"):
        if data.get(key) is not None:
            lines.append(f"  {key}: {data[key]}")
    docs = data.get("docs")  # per-source documentation links, when the registry gives them
    if isinstance(docs, dict):
        lines += [f"  docs ({kind}): {link}" for kind, link in docs.items()]
    elif docs:
        lines.append(f"  docs: {docs}")
    if data.get("input"):
        spec = data["input"]
        size = "x".join(map(str, spec["size"])) if spec.get("size") else "any"
        scaled = "x / 255" if abs(spec["scale"] * 255 - 1) < 1e-6 else f"x * {spec['scale']:g}"
        lines.append(f"  input: {spec['color']} {spec['layout']} {spec['dtype']}, ({scaled} - mean) / std, "
                     f"mean {_floats(spec['mean'])}, std {_floats(spec['std'])}, size {size} ({spec['size_policy']})")  # fmt: skip
    if data.get("labels"):
        lines.append(f"  labels ({len(data['labels'])}): {', '.join(data['labels'])}")
    for kind, art in entry.artifacts.items():
        lines.append(f"  {kind}: {art.urls[0]}" + (f" (+{len(art.urls) - 1} more)" if len(art.urls) > 1 else ""))
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
    if data["plugin_error"]:
        lines.append(f"  plugin: {data['plugin_error']}")
    lines.append(f"  registry: {entry.source}")
    return lines


def _floats(values: list) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


@app.command("plugins")
def plugins_(json_: bool = typer.Option(False, "--json", help="Print a JSON array.")) -> None:
    """List architecture plugins, including any that failed to load and why."""
    found = plugins.discover()
    if json_:
        print_json([p.as_dict() for p in found])
        return
    rows = [
        [p.name, p.distribution or "-", p.version or "-", "ok" if p.architecture else f"BROKEN: {p.error}"]
        for p in found
    ]
    typer.echo(table(rows, ["NAME", "DISTRIBUTION", "VERSION", "STATUS"]))
