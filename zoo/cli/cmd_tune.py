"""zoo tune: find the fastest configuration that agrees with float32 Paddle on this machine and make it the default
(see zoo/measure/tune.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer

from zoo.cli._app import JsonFlag, ModelName, app, backend_name, info, parse_size, print_json, stdout_to_stderr, table

PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def _names(text: str, known: tuple[str, ...] | None, option: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    bad = [n for n in names if known is not None and n not in known]
    if bad:
        raise typer.BadParameter(f"choose from {', '.join(known or ())}, got {text!r}", param_hint=option)
    return names


@app.command()
def tune(
    name: ModelName,
    backend: str = typer.Option("", "--backend", metavar="A[,B...]", help="Only these backends (default: every one installed)."),
    precision: str = typer.Option("", "--precision", metavar="P[,P...]", help="Only these precisions: fp32, bf16, fp16, int8."),
    threads: str = typer.Option("", "--threads", metavar="N[,N...]", help="Thread counts to try (default: one per core)."),
    size: str = typer.Option("512x1024", "--size", metavar="HxW", help="Size of the synthetic images (no --images)."),
    images: Optional[Path] = typer.Option(None, "--images", metavar="DIR", help="Judge on these images instead."),  # noqa: UP007
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR", help="Labelled data: also bound the mIoU drop."),  # noqa: UP007
    min_agreement: float = typer.Option(0.995, "--min-agreement", min=0.0, max=1.0,
                                        help="Share of pixels that must keep float32 Paddle's label."),
    max_miou_drop: float = typer.Option(0.1, "--max-miou-drop", min=0.0, help="With --data: mIoU points one may lose."),
    rounds: int = typer.Option(2, "--rounds", min=1, help="Interleaved rounds (the order reverses each round)."),
    runs: int = typer.Option(3, "--runs", min=1, help="Timed images per candidate and round."),
    warmup: int = typer.Option(1, "--warmup", min=0, help="Untimed images first, per process."),
    quiet_wait: float = typer.Option(2.0, "--quiet-wait", min=0.0, help="Seconds to wait for a quiet machine first."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the candidates and what would be made; run nothing."),
    report: Optional[Path] = typer.Option(None, "--report", metavar="DIR", help="Write tune.json, tune.html, tune.png."),  # noqa: UP007
    json_: JsonFlag = False,
) -> None:
    """Measure every backend × precision × threads × session option, judge each against float32 Paddle as 'zoo
    verify' does, and make the fastest that passes the default of 'zoo run', 'zoo bench', 'zoo eval' and zoo.load."""
    from zoo.images import expand_inputs
    from zoo.measure import tune as tune_mod
    from zoo.registry import catalog

    handle = catalog.resolve(name)
    crit = tune_mod.Criteria(
        size=parse_size(size), images=tuple(str(p) for p in expand_inputs([images])) if images else (),
        min_agreement=min_agreement, max_miou_drop=max_miou_drop, data=str(data) if data else None, rounds=rounds,
        runs=runs, warmup=warmup, quiet_wait=quiet_wait,
    )  # fmt: skip
    counts = tuple(int(t) for t in _names(threads, None, "--threads") if t.isdigit() and int(t) > 0)
    if threads and not counts:
        raise typer.BadParameter(f"give positive thread counts, e.g. 1,2; got {threads!r}", param_hint="--threads")
    plan = tune_mod.plan(handle, backends=tuple(backend_name(b) for b in _names(backend, None, "--backend")),
                         precisions=_names(precision, PRECISIONS, "--precision"), threads=counts, criteria=crit)  # fmt: skip
    if dry_run:
        typer.echo("\n".join([f"zoo tune {name} would measure:", *plan.describe()]))
        return
    info(f"tuning {name}: " + plan.describe()[0])
    with stdout_to_stderr() if json_ else contextlib.nullcontext():
        result = plan.execute(progress=info)
    written = {}
    if report is not None:
        from zoo.measure import tune_report

        written = tune_report.write(result, report)
    if json_:
        print_json({**result.as_dict(), "report": written or None})
        info(result.summary())
        return
    rows = []
    for row in result.rows:
        rows.append([("* " if row.chosen else "  ") + row.choice.key, f"{row.fastest:,.1f}" if row.fastest else "-",
                     f"{row.agreement:.3%}" if row.agreement is not None else "-",
                     f"{row.others:.0%}", row.why])  # fmt: skip
    typer.echo(table(rows, ["  CONFIGURATION", "FASTEST MS", "LABELS", "OTHERS", "WHY"]))
    typer.echo(result.summary())
    typer.echo(f"recorded in {result.record_path}; 'zoo run {name} ...' now uses it (explicit --backend/--precision win)")
    if written:
        typer.echo(f"report: {written['html']}")
