"""zoo export: build a network from its plugin, load weights, save a Paddle inference model into the cache."""

from __future__ import annotations

from typing import Optional

import typer

from zoo.cli._app import app, info, print_json


@app.command()
def export(
    name: str = typer.Argument(..., help="Model name (see 'zoo list')."),
    weights: Optional[str] = typer.Option(  # noqa: UP007
        None, "--weights", metavar="PATH|URL|random", help="Weights to load (default: the entry's [weights] artifact)."
    ),
    output_op: str = typer.Option("argmax", "--output-op", help="argmax (int32 labels), softmax or none (logits)."),
    seed: int = typer.Option(0, "--seed", help="Seed for --weights random."),
    legacy: bool = typer.Option(False, "--legacy", help="Write a legacy model.pdmodel program instead of PIR."),
    json_: bool = typer.Option(False, "--json", help="Print a JSON object."),
) -> None:
    """Export NAME's network with trained (or seeded random) weights into the cache."""
    from zoo.make import export as export_mod
    from zoo.registry import catalog
    from zoo.store import cache, repair

    from zoo import progress

    handle = catalog.resolve(name)
    before = repair.remakers(handle.name)  # what a new Paddle model drops, and the commands that remake it
    with progress.spinner(f"exporting {name}: building the network, loading weights"):
        folder = export_mod.export_model(handle, weights=weights, output_op=output_op, seed=seed, legacy=legacy)
    provenance = cache.read_manifest(folder)["provenance"]
    if note := repair.dropped(handle.name, before):
        info(f"note: {note}")
    if json_:
        print_json({"name": name, "path": str(folder), **provenance,
                    "dropped": [k for k in before if k not in cache.variants(handle.name)]})  # fmt: skip
        return
    if provenance["weights"] == "random":
        info(f"note: {name} has UNTRAINED random weights (seed {seed}); its masks are noise, fine for testing only")
    typer.echo(f"exported {name} ({provenance['format']}, output {output_op}) to {folder}")
