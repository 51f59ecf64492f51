"""The typer app every command module registers on, and the few helpers commands share."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from zoo.cli.layout import fit, run_line, table, width  # noqa: F401 - commands import them from here


class _UnsetHelpIsFalse:
    """An unset ``--help`` is False rather than None.

    typer 0.29 skips its pydantic-based value coercion only for bool flags whose value is a bool; its help option
    defaults to None, so without this every command would import pydantic (~70 ms) just to learn that --help was not
    given. With it, commands whose options are bool flags (``zoo list``, ``zoo plugins``) start without pydantic.
    """

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None and option.default is None:
            option.default = False
        return option


class ZooGroup(_UnsetHelpIsFalse, TyperGroup):
    pass


def _plain_type(display: str | None) -> str | None:
    """typer's ``<int range>``, ``<str>``, ``<cpu|gpu>`` as click spells types in help: INTEGER, TEXT, cpu|gpu."""
    if not display:
        return display
    inner = display.strip("<>").removesuffix(" range")
    many = inner.startswith("list[")
    inner = inner.removeprefix("list[").removesuffix("]")
    plain = {"int": "INTEGER", "float": "NUMBER", "str": "TEXT", "bool": "", "path": "PATH"}.get(inner, inner)
    return plain + ("..." if many and plain else "")


class ZooCommand(_UnsetHelpIsFalse, TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        """Help names an argument by its metavar alone (NAME, not ``name <str>``) and an option's value the way
        click does (INTEGER, TEXT), not by Python type."""
        import types

        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "zoo_plain_help", False):
                continue
            param.zoo_plain_help = True
            if param.param_type_name == "argument":
                param.metavar = param.metavar or (param.name or "").upper()
                param.display_type_rich = types.MethodType(lambda self, ctx: None, param)
            elif param.metavar is None and hasattr(param, "display_type"):
                plain = _plain_type(param.display_type(ctx)) if not getattr(param, "is_flag", False) else None
                param.display_type_rich = types.MethodType(lambda self, ctx, plain=plain: plain or None, param)
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``NAME INPUT... [OPTIONS]`` as click and typer print it with rich: no ``{name}`` braces."""
        pieces, options = [], False
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                options = options or not getattr(param, "hidden", False)
                continue
            name = param.metavar or (param.name or "").upper()
            if param.nargs != 1 and not name.endswith("..."):
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
        return pieces + (["[OPTIONS]"] if options else [])


app = typer.Typer(
    name="zoo",
    cls=ZooGroup,
    help="A model zoo for PaddleSeg segmentation models: pull, export, convert to ONNX, run, verify, bench.",
    epilog=(
        "Global option, before or after the command: --registry FILE  Extra registry file (repeatable); merged "
        "after ZOO_REGISTRY."
    ),
    no_args_is_help=True,
    add_completion=False,  # zoo's own bool flags below: typer's would make every command import pydantic
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help text: rich's import alone costs more than all of zoo's start-up
)
cache_app = typer.Typer(cls=ZooGroup, help="Inspect and maintain the local cache.", no_args_is_help=True)
bundle_app = typer.Typer(cls=ZooGroup, help="Carry cached models to another machine.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
app.add_typer(bundle_app, name="bundle")


# Parameters several commands share, spelled once (typer reads the Annotated metadata).
ModelName = Annotated[str, typer.Argument(metavar="NAME", help="Model name (see 'zoo list').")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
WideFlag = Annotated[bool, typer.Option("--wide", help="Every table column, however wide the terminal.")]
Threads = Annotated[
    Optional[int],  # noqa: UP007 - typer needs Optional here
    typer.Option("--threads", min=1, help="CPU threads for inference (default: one per core)."),
]


def backend_name(value: str, *extra: str) -> str:
    """``--backend NAME``: one of the registered backends (``zoo plugins``), read when the option is used."""
    from zoo.registry import backends

    known = backends.names() + extra
    if value not in known:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(repr(k) for k in known)} (see 'zoo plugins')")
    return value


def backend_list(value: str) -> str:
    """``zoo bench --backend A[,B...]``: registered backends, comma-separated; ``both`` is the default backend and the
    reference one (what their specs say: onnx and paddle as zoo ships)."""
    from zoo.registry import backends

    names = [backend_name(v.strip(), "both") for v in str(value).split(",") if v.strip()]
    both = (backends.default_backend().name, backends.reference_backend().name)
    expanded = [n for v in names for n in (both if v == "both" else (v,))]
    if not expanded:
        raise typer.BadParameter("give at least one backend, e.g. onnx or onnx,openvino,paddle")
    return ",".join(dict.fromkeys(expanded))  # in the order given, each once


def backend_pair(value: str) -> tuple[str, str]:
    """``--backend A,B``: two different registered backends, the reference first."""
    pair = tuple(backend_name(v.strip()) for v in str(value).split(",") if v.strip())
    if len(pair) != 2 or pair[0] == pair[1]:
        raise typer.BadParameter(f"give two different backends, the reference first, e.g. paddle,onnx; got {value!r}")
    return pair  # type: ignore[return-value]


def use_zoo_commands() -> None:
    """Build every registered command as a ZooCommand (call once the command modules are imported)."""
    for group in (app, cache_app, bundle_app):
        for command in group.registered_commands:
            if command.cls in (None, TyperCommand):
                command.cls = ZooCommand


def split_global_options(argv: list[str]) -> list[str]:
    """Take ``--registry FILE`` (or ``--registry=FILE``, repeatable) from before the command into the catalog
    (:func:`zoo.registry.catalog.use_registries`); the rest goes to typer.

    zoo parses this one option itself: typer 0.29 imports pydantic (~70 ms) to coerce any parameter that is not a
    bool flag, even one left unset, and a root option is processed by every command. Parsed here, commands whose own
    options are bool flags (``zoo list``, ``zoo plugins``) start without pydantic.
    """
    registries: list[Path] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":  # what follows is the command's, verbatim
            rest += argv[i:]
            break
        if arg != "--registry" and not arg.startswith("--registry="):  # --registryx: typer's error
            rest.append(arg)
            i += 1
            continue
        if arg == "--registry":
            value = argv[i + 1] if i + 1 < len(argv) else ""
            missing = not value or value.startswith("-")  # the next option, not a file
            i += 2
        else:
            value = arg.split("=", 1)[1]
            missing = not value
            i += 1
        if missing:
            from typer._click.exceptions import UsageError

            raise UsageError("--registry needs a FILE, as in: zoo --registry FILE COMMAND")
        registries.append(Path(value))
    from zoo.registry import catalog

    catalog.use_registries(registries)
    return repeat_multi_options(rest)


MULTI_VALUE = {"verify": ("--image", "-i")}  # options that take several values: --image a b == --image a --image b


def repeat_multi_options(argv: list[str]) -> list[str]:
    """``zoo verify NAME --image a b`` as ``--image a --image b`` (click options take one value each; the README
    writes ``--image PATH...``). Values run up to the next option."""
    if not argv or argv[0] not in MULTI_VALUE:
        return argv
    names = MULTI_VALUE[argv[0]]
    out, option, positional, added = [argv[0]], None, False, []
    for arg in argv[1:]:
        if arg.startswith("-"):
            option = arg if arg in names else None
            out.append(arg)
        elif option is not None and out[-1] != option:
            added.append(len(out))  # where the repeated option went
            out += [option, arg]
        else:
            positional = positional or out[-1] not in names and not out[-1].startswith("-")
            out.append(arg)
    if not positional and added:  # `zoo verify --image a b NAME`: the last value is the command's NAME
        del out[added[-1]]
    return out


def _version(value: bool) -> None:
    if value:
        from zoo.util import version

        typer.echo(f"zoo {version()}")
        raise typer.Exit()


def _completion(ctx: Any, param: Any, value: bool) -> None:
    """--install-completion / --show-completion, through typer's own completion scripts (shell from $SHELL)."""
    if value:
        from typer import completion

        completion.completion_init()
        done = completion.install_callback if param.name == "install_completion" else completion.show_callback
        done(ctx, param, value)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    install_completion: bool = typer.Option(False, "--install-completion", callback=_completion, is_eager=True,
                                            help="Install tab completion for your shell (bash, zsh, fish)."),
    show_completion: bool = typer.Option(False, "--show-completion", callback=_completion, is_eager=True,
                                         help="Print the tab-completion script for your shell."),
) -> None:
    pass


MIN_SIDE = 32  # PaddleSeg's networks downsample by 32: a smaller input leaves them an empty feature map


def parse_size(text: str) -> tuple[int, int]:
    """``--size HxW`` → (height, width) (:func:`zoo.util.parse_size`), a usage error otherwise."""
    from zoo import util

    from zoo.images import MAX_SIDE

    try:
        h, w = util.parse_size(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--size") from None
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):  # memory, and what a network can downsample
        raise typer.BadParameter(f"expected HxW with each side {MIN_SIDE} to {MAX_SIDE} pixels, such as 512x1024, "
                                 f"got {text!r}", param_hint="--size")  # fmt: skip
    return h, w


def print_json(obj: Any) -> None:
    """Machine-readable output: one JSON document on stdout."""
    from zoo.util import json_text

    sys.stdout.write(json_text(obj) + "\n")
    sys.stdout.flush()


def plural(n: int, noun: str) -> str:
    """``1 model``, ``2 models``, ``3 entries``."""
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun[:-1]}ies" if noun.endswith("y") else f"{n} {noun}s"


def info(message: str) -> None:
    """Progress and status for humans: stderr, so stdout stays clean for --json; long lines wrap to the terminal."""
    from zoo import progress

    progress.echo(fit(message, err=True), err=True)


def say(message: str) -> None:
    """A result line on stdout, wrapped to the terminal like :func:`info`, printed above any progress bar."""
    from zoo import progress

    progress.echo(fit(message))


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


@contextlib.contextmanager
def zoo_warnings(*, quiet: tuple[type[Warning], ...] = ()) -> Iterator[None]:
    """zoo's own warnings (images converted on reading, model metadata, untrained weights) each time they happen, shown
    after the block (as one line each by the hook :func:`zoo.cli.main` sets); ``quiet`` ones not at all (the command
    says it its own way)."""
    import warnings

    from zoo.images import ImageWarning
    from zoo.runners.runtime import MetadataWarning, TunedWarning, UntrainedWarning

    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            for category in (ImageWarning, MetadataWarning, TunedWarning, UntrainedWarning):
                warnings.simplefilter("always", category)
            yield
    finally:  # outside the block: showwarning is the one it replaced again, not the recorder
        for w in caught:
            if not issubclass(w.category, quiet):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def show_result(result: Any, summaries: list[dict[str, Any]], json_: bool) -> bool:
    """Report one image of ``zoo run`` (either engine): its error, or its warnings and (without --json) its line,
    keeping its summary in ``summaries``. False when the image failed."""
    if result.error is not None:
        info(f"zoo: error: {result.error}")
        return False
    summaries.append(result.summary)
    for note in result.summary["warnings"]:
        info(f"zoo: warning: {result.path}: {note}")
    if not json_:
        say(run_line(result.summary, width()))
    return True


def with_palette(model: Any, colours: tuple[tuple[int, int, int], ...] | None) -> Any:
    """A loaded Model (or a ShippedModel for Ray's workers) drawing with ``--palette``'s colours for this run."""
    from dataclasses import replace

    if colours is None:
        return model
    return replace(model, architecture=replace(model.architecture, palette=colours))
