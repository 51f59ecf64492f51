"""zoo convert: a cached Paddle model (by name) or a folder (by path) → ONNX. paddle is imported only to convert."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import typer

from zoo.cli._app import app, info, print_json


def _is_path(target: str) -> bool:
    """A folder, not a model name: it has a path separator, or is a folder and no model is called that ("./fcn")."""
    if os.sep in target or "/" in target or target in (".", ".."):
        return True
    if not Path(target).is_dir():
        return False
    from zoo.registry import catalog

    return not catalog.current().knows(target)


@app.command()
def convert(
    target: str = typer.Argument(..., metavar="NAME|PATH", help="Model name, or a folder holding a Paddle model."),
    opset: int = typer.Option(11, "--opset", min=7, help="ONNX opset to export (raised if an op needs more)."),
    force: bool = typer.Option(False, "--force", help="Convert again even if a cached conversion exists."),
    output: Optional[Path] = typer.Option(  # noqa: UP007 - typer needs Optional here
        None, "--output", "-o", metavar="FILE", help="For PATH: the .onnx to write (default: PATH.onnx beside it)."
    ),
    architecture: Optional[str] = typer.Option(  # noqa: UP007
        None, "--architecture", metavar="ARCH", help="For PATH: plugin whose labels and input spec to stamp."
    ),
    json_: bool = typer.Option(False, "--json", help="Print a JSON object."),
) -> None:
    """Convert a Paddle inference model to ONNX with paddle2onnx, offline; cached by model, opset and converter."""
    from zoo.make import convert as convert_mod
    from zoo.store.cache import sha256_file

    if not _is_path(target):
        if output is not None or architecture is not None:
            raise typer.BadParameter("--output and --architecture are for a folder; a named model goes to the cache "
                                     f"(see 'zoo cache path {target} --format onnx')")  # fmt: skip
        from zoo.make import ensure
        from zoo.registry import catalog

        handle = catalog.resolve(target)  # an unknown name fails here; a model not pulled yet is pulled first
        ensure.ensure(handle, "paddle", progress=info)
        if not json_:
            info(f"converting {target} to ONNX (opset {opset}) ...")
        from zoo import progress

        with progress.spinner(f"converting {target} with paddle2onnx"):
            result = convert_mod.convert(handle, opset=opset, force=force)
        if json_:
            print_json(result.as_dict())
            return
        how = "cached" if result.cached else f"converted in {result.seconds:.1f} s"
        info(f"{result.name}: {how}, {result.sha256}")
        typer.echo(str(result.path))
        return
    folder = Path(target).expanduser().resolve()
    out = (output or folder.parent / f"{folder.name}.onnx").expanduser().resolve()
    start = time.perf_counter()
    from zoo import progress

    with progress.spinner(f"converting {folder.name} with paddle2onnx"):
        convert_mod.convert_model_dir(folder, out, opset=opset, architecture=architecture)
    data = {"source": str(folder), "path": str(out), "sha256": sha256_file(out), "cached": False,
            "seconds": round(time.perf_counter() - start, 3), "opset": opset}  # fmt: skip
    if json_:
        print_json(data)
        return
    info(f"{folder}: converted in {data['seconds']:.1f} s, {data['sha256']}")
    typer.echo(str(out))
