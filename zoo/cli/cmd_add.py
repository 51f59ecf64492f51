"""zoo add: register someone's own PaddleSeg export (folder, archive or URL) by name, with its classes and colours."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from zoo.cli._app import app, info, print_json


@app.command()
def add(
    name: str = typer.Argument(..., metavar="NAME", help="The name to use it by (lowercase, digits, '.', '_', '-')."),
    source: str = typer.Argument(..., metavar="SOURCE", help="Export folder, .tar/.tgz/.zip of one, or its URL."),
    labels: Optional[str] = typer.Option(  # noqa: UP007 - typer needs Optional here
        None, "--labels", metavar="FILE|PRESET", help="Class names, one per line, or cityscapes|ade20k|voc|camvid."
    ),
    palette: Optional[str] = typer.Option(  # noqa: UP007
        None, "--palette", metavar="FILE|PRESET",
        help="Colours, one 'R G B' or '#rrggbb' per line, or cityscapes|ade20k|voc|camvid|paddleseg (PaddleSeg's "
        "pseudo-colours); default: the preset of --labels or --dataset, else PaddleSeg's."),
    dataset: Optional[str] = typer.Option(  # noqa: UP007
        None, "--dataset", help="What it was trained on (ade20k also sets ADE20K's eval convention)."
    ),
    license_: Optional[str] = typer.Option(None, "--license", help="Its license."),  # noqa: UP007
    summary: Optional[str] = typer.Option(  # noqa: UP007
        None, "--summary", help="One line shown by 'zoo list' and 'zoo info'."
    ),
    architecture: Optional[str] = typer.Option(  # noqa: UP007
        None, "--architecture", metavar="ARCH", help="A plugin that can build the network (for 'zoo export')."
    ),
    ignore_index: Optional[int] = typer.Option(  # noqa: UP007
        None, "--ignore-index", min=0, max=65535, help="Label value 'zoo eval' skips (default 255)."
    ),
    reduce_zero_label: Optional[bool] = typer.Option(  # noqa: UP007
        None, "--reduce-zero-label/--no-reduce-zero-label", help="Label 0 is 'other': ignored, the rest shift by one."
    ),
    registry: Optional[Path] = typer.Option(  # noqa: UP007
        None, "--registry", metavar="FILE", help="Registry file to write (default: $ZOO_HOME/config/registry.toml)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an entry this registry file already has."),
    json_: bool = typer.Option(False, "--json", help="Print a JSON object."),
) -> None:
    """Check a PaddleSeg export like a pull, cache it, and write its registry entry: every command then takes NAME."""
    from zoo.make import add as add_mod

    if not json_:
        info(f"adding {name} from {source} ...")
    result = add_mod.add(name, source, registry=registry, labels=labels, palette=palette, dataset=dataset,
                         license=license_, summary=summary, architecture=architecture, ignore_index=ignore_index,
                         reduce_zero_label=reduce_zero_label, force=force)  # fmt: skip
    if json_:
        print_json(result.as_dict())
        return
    entry, sig = result.entry, result.signature
    shape = "x".join(str(d) if d > 0 else "?" for d in sig["input_shape"])
    names = ", ".join((entry.labels or ())[:6]) + (" ..." if len(entry.labels or ()) > 6 else "")
    info(f"{name}: {entry.num_classes} classes ({names or 'numbered'}), input {shape}, output {sig['output_op']}; "
         f"written to {result.registry}")  # fmt: skip
    typer.echo(str(result.folder))
