"""zoo pull, zoo cache ls|path|verify|rm|prune, zoo bundle export|import: getting models in, and looking after them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from zoo.store import artifacts, cache
from zoo.cli._app import app, bundle_app, cache_app, info, plural, print_json, table


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


@app.command()
def pull(
    name: str = typer.Argument(..., help="Model name (see 'zoo list')."),
    fmt: str = typer.Option("paddle", "--format", metavar="paddle|onnx|all", help="What to fetch."),
    source: Optional[str] = typer.Option(  # noqa: UP007 - typer needs Optional here
        None, "--from", metavar="inference|weights",
        help="Source of the Paddle model (default: the inference archive, or the weights if it is gone).",
    ),  # fmt: skip
    mirror: Optional[str] = typer.Option(  # noqa: UP007
        None, "--mirror", metavar="URL_OR_DIR", help="HTTP base URL or folder (an extracted bundle) tried first."
    ),
    force: bool = typer.Option(False, "--force", help="Download and unpack again even if cached."),
    offline: bool = typer.Option(False, "--offline", help="Never touch the network (like ZOO_OFFLINE=1)."),
    require_hash: bool = typer.Option(False, "--require-hash", help="Refuse artifacts with no pinned sha256."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Fetch a model into the local cache; afterwards everything works offline."""
    from zoo.make import pull as pull_mod
    from zoo.registry import catalog
    from zoo.store import repair

    if fmt not in pull_mod.FORMATS:
        raise typer.BadParameter(f"choose one of {', '.join(pull_mod.FORMATS)}", param_hint="--format")
    if source is not None and source not in pull_mod.SOURCES:
        raise typer.BadParameter(f"choose one of {', '.join(pull_mod.SOURCES)}", param_hint="--from")
    handle = catalog.resolve(name)
    before = repair.remakers(handle.name)  # what a new Paddle model drops, and the commands that remake it
    results = pull_mod.pull(
        handle, fmt=fmt, source=source, mirror=mirror, force=force, offline=offline or None,
        require_hash=require_hash or None, progress=False if quiet else None,
    )  # fmt: skip
    for r in results:
        if r.note:
            info(f"{r.name}: {r.note}")
        what = "already cached" if r.reused else f"pulled from {r.source} {r.url}"
        typer.echo(f"{r.name} ({r.fmt}): {what}, {r.sha256}, at {r.path}")
    if note := repair.dropped(handle.name, before):
        info(f"note: {note}")


@cache_app.command("ls")
def ls(json_: bool = typer.Option(False, "--json", help="Print a JSON object.")) -> None:
    """List cached models, with formats, sources, sizes and dates."""
    from zoo.store import housekeeping

    found = housekeeping.scan()
    if json_:
        print_json(found.as_dict())
        return
    rows = [
        [m.name, ",".join(m.formats) or "-", m.source or "-", _size(m.size), (m.updated or "-").replace("T", " ")]
        for m in sorted(found.models, key=lambda m: m.name)
    ]
    if rows:
        typer.echo(table(rows, ["NAME", "FORMATS", "SOURCE", "SIZE", "UPDATED"]))
    orphans = [e for e in found.entries if not e.names]
    unused = [b for b in found.blobs if not b.names]
    counts = ", ".join(plural(n, what) for n, what in ((len(found.models), "model"), (len(found.entries), "entry"),
                                                        (len(found.blobs), "blob")))  # fmt: skip
    info(f"{counts}, {_size(found.size)} in {found.root}")
    if orphans or unused or found.temp:
        info(f"{plural(len(orphans), 'orphan entry')}, {plural(len(unused), 'unreferenced blob')}, "
             f"{plural(len(found.temp), 'temp file')}: 'zoo cache prune' removes them")  # fmt: skip


@cache_app.command("path")
def path(
    name: str = typer.Argument(..., help="Model name."),
    fmt: str = typer.Option("paddle", "--format", metavar="|".join(artifacts.KINDS),
                            help="Which cached form: the Paddle model or a variant."),  # fmt: skip
) -> None:
    """Print the folder of a cached Paddle model, or a variant's .onnx file; exit 1 if it is not cached."""

    if not cache.is_entry_format(fmt):
        raise typer.BadParameter(f"choose one of {', '.join(artifacts.KINDS)}", param_hint="--format")
    cache.check_name(name)  # a name, never a path
    found = cache.artifact_path(name, fmt)
    typer.echo(str(found))


@cache_app.command("verify")
def verify(name: Optional[str] = typer.Argument(None, help="Only this model.")) -> None:  # noqa: UP007
    """Re-hash every cached file against its manifest or name; exit 1 listing every problem."""
    from zoo.store import housekeeping
    from zoo.errors import IntegrityError

    report = housekeeping.verify(name)
    if report.ok:
        typer.echo(f"ok: {report.checked} files match their sha256")
        return
    for problem in report.problems:
        typer.echo(str(problem))
    from zoo.store import repair

    fix = repair.for_problems(report.problems)  # a command that rebuilds each damaged entry
    raise IntegrityError(f"{len(report.problems)} problem(s) in the cache ({cache.root()}); {fix}")


@cache_app.command("rm")
def rm(
    name: str = typer.Argument(..., help="Model name."),
    variant: Optional[str] = typer.Option(  # noqa: UP007
        None, "--variant", metavar="|".join(filter(artifacts.is_variant, artifacts.KINDS)),
        help="Only this derived model (or tuned: forget the tuned choice of zoo tune); the rest stays."
    ),
) -> None:
    """Remove a model's cached files (entries and blobs no other model uses), or only one variant."""
    from zoo.store import housekeeping

    removed = housekeeping.remove(cache.check_name(name), variant)  # a name, never a path
    typer.echo(f"removed {name}{f' {variant}' if variant else ''}: {len(removed)} item(s)")


@cache_app.command("prune")
def prune(dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed.")) -> None:
    """Remove temp files of interrupted work, entries no model points to, and unreferenced blobs."""
    from zoo.store import housekeeping

    report = housekeeping.prune(dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for p in report.removed:
        typer.echo(f"{verb} {p}")
    for p in report.kept:
        info(f"kept {p} (changed in the last {housekeeping.PRUNE_GRACE:.0f} s; another zoo may be using it)")
    typer.echo(f"{verb} {len(report.removed)} item(s), {_size(report.freed)}")


@bundle_app.command("export")
def bundle_export(
    names: list[str] = typer.Argument(..., help="Cached model names."),
    output: Path = typer.Option(..., "--output", "-o", metavar="FILE.tar", help="The bundle to write."),
) -> None:
    """Write cached models into one tar to carry to an offline machine."""
    from zoo.make import bundle

    summary = bundle.export_bundle(names, output)
    typer.echo(f"wrote {summary.path}: {', '.join(summary.names)} ({summary.files} files, {_size(summary.size)})")


@bundle_app.command("import")
def bundle_import(
    file: Path = typer.Argument(..., metavar="FILE.tar", help="A bundle made by 'zoo bundle export'."),
) -> None:
    """Verify a bundle and add its models to the cache."""
    from zoo.make import bundle

    summary = bundle.import_bundle(file)
    typer.echo(f"imported {', '.join(summary.names)} from {summary.path} ({summary.files} files verified)")
