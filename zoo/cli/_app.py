"""The typer app every command module registers on, and the few helpers commands share."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(
    name="zoo",
    help="A model zoo for PaddleSeg segmentation models: pull, export, convert to ONNX, run, verify, bench.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help text: rich's import alone costs more than all of zoo's start-up
)
cache_app = typer.Typer(help="Inspect and maintain the local cache.", no_args_is_help=True)
bundle_app = typer.Typer(help="Carry cached models to another machine.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
app.add_typer(bundle_app, name="bundle")


class State:
    """Options given before the command."""

    registries: list[Path] = []


def _version(value: bool) -> None:
    if value:
        from zoo import __version__

        typer.echo(f"zoo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    registry: Optional[list[Path]] = typer.Option(  # noqa: UP007 - typer needs Optional here
        None, "--registry", metavar="FILE", help="Extra registry file (repeatable); merged after ZOO_REGISTRY."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    State.registries = list(registry or [])


def print_json(obj: Any) -> None:
    """Machine-readable output: one JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned columns, two spaces apart."""
    cells = [header] + rows
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def info(message: str) -> None:
    """Progress and status for humans: stderr, so stdout stays clean for --json."""
    typer.echo(message, err=True)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send fd 1 to stderr while working: native libraries (paddle) print there, and --json must be alone on stdout."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
