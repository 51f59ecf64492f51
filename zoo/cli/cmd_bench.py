"""zoo bench: latency, throughput, stage split and peak memory of a cached model, per backend (see zoo/measure/bench.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from zoo.cli._app import (JsonFlag, ModelName, Threads, WideFlag, app, backend_list, info, parse_size, print_json, say,
                          table)


def _precisions(text: str, backends: tuple[str, ...]) -> tuple[str, ...]:
    """``--precision fp32,int8`` → ("fp32", "int8"); a usage error for one no measured backend declares."""
    from zoo.registry import backends as registered

    declared = tuple(dict.fromkeys(p for b in backends for p in registered.get(b).precisions))
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    if not names or any(p not in declared for p in names):
        raise typer.BadParameter(f"{', '.join(backends)} run {', '.join(declared)}; got {text!r}",
                                 param_hint="--precision")  # fmt: skip
    return names


@app.command()
def bench(
    name: ModelName,
    backend: Optional[str] = typer.Option(  # noqa: UP007
        None, "--backend", metavar="NAME[,NAME...]", parser=backend_list,
        help="Backends to measure (see 'zoo plugins'); both = the default and the reference backend "
        "(the default; after the tuned choice 'zoo run' uses, when 'zoo tune' made one)."),  # fmt: skip
    size: str = typer.Option("512x1024", "--size", metavar="HxW", help="Input image height x width."),
    threads: Threads = None,
    warmup: int = typer.Option(2, "--warmup", min=0, help="Untimed images first."),
    runs: int = typer.Option(10, "--runs", min=1, help="Timed images."),
    precision: Optional[str] = typer.Option(  # noqa: UP007
        None, "--precision", metavar="P[,P...]",
        help="Precisions to run on each backend that declares them (see 'zoo plugins'); default fp32."),
    device: Optional[str] = typer.Option(  # noqa: UP007 - typer needs Optional here
        None, "--device", help="Where every backend runs (default: each backend's first declared device)."),
    json_: JsonFlag = False,
    wide: WideFlag = False,
    report: Optional[Path] = typer.Option(None, "--report", metavar="DIR",  # noqa: UP007 - typer needs Optional
                                          help="Write bench.json, a latency and memory chart and index.html."),
) -> None:
    """Time a model on ONNX Runtime and Paddle Inference (or any backends), each in its own process."""
    from zoo.measure import bench as bench_mod
    from zoo.make import ensure
    from zoo.registry import backends as backends_registry, catalog
    from zoo.runners import runtime

    hw = parse_size(size)
    handle = catalog.resolve(name)
    chosen = runtime.choose(handle, backend, precision)  # no flags: the tuned choice is the default row
    if chosen.note:
        info(f"zoo: warning: {chosen.note}")
    backends = tuple((backend or backend_list("both")).split(","))
    precisions = _precisions(precision or "fp32", backends)
    say_row = lambda line: info(f"bench {name}: {line}")  # noqa: E731
    for spec, p in bench_mod.runs_of(backends, precisions):  # the one door: what each row runs, made sure of first
        ensure.prepare(handle, spec.name, p, progress=say_row)
    tuned = chosen if chosen.tuned else None
    if tuned is not None:
        ensure.prepare(handle, tuned.backend, tuned.precision, progress=say_row)
    result = bench_mod.bench(handle, backends=backends, size=hw, threads=threads, warmup=warmup, runs=runs,
                             progress=info, precisions=precisions, device=device, tuned=tuned)  # fmt: skip
    if report is not None:
        from zoo.measure import bench_report

        info(f"report: {bench_report.write_report(result, report)}")
    if json_:
        print_json(result.as_dict())
        if result.failed:
            raise typer.Exit(1)
        return
    say(f"{name} at {hw[0]}x{hw[1]} (HxW), {result.threads} threads, {runs} runs after {warmup} warm-up "
               "(latency = preprocess + inference + postprocess)")  # fmt: skip
    rows = []
    for stats in result.backends.values():
        compared = ([f"{stats.speedup:.2f}x" if stats.speedup else "-",
                     f"{stats.agreement:.2%}" if stats.agreement is not None else "-"] if result.reference else [])  # fmt: skip
        rows.append([
            stats.backend + (" (tuned)" if stats.tuned else ""), stats.precision, f"{stats.p50_ms:.1f}", f"{stats.p90_ms:.1f}", f"{stats.p99_ms:.1f}",
            *compared, f"{stats.throughput_ips:.2f}", f"{stats.preprocess_ms:.1f}", f"{stats.inference_ms:.1f}",
            f"{stats.postprocess_ms:.1f}", f"{stats.peak_rss_mb:.0f} MB", str(stats.threads), ",".join(stats.providers),
        ])  # fmt: skip
    header = ["BACKEND", "PRECISION", "P50 MS", "P90 MS", "P99 MS", *(["SPEED-UP", "LABELS"] if result.reference else []),
              "IMG/S", "PRE MS", "INFER MS", "POST MS", "PEAK RSS", "THREADS", "PROVIDERS"]  # fmt: skip
    for key in result.failed:  # the row that could not be measured, marked where it would have been
        backend_name_, _, precision_ = key.partition("/")
        rows.append([backend_name_, precision_ or "fp32", "FAILED", *["-"] * (len(header) - 3)])
    optional = ("PROVIDERS", "THREADS", "PRE MS", "POST MS", "P99 MS", "P90 MS", "IMG/S")  # least read first
    typer.echo(table(rows, header, optional=optional, wide=wide))
    if result.reference:
        ref = result.backends[result.reference]
        say(f"SPEED-UP = p50 of {ref.backend} {ref.precision} ÷ the row's; LABELS = share of pixels labelled as "
                   f"{ref.backend} {ref.precision} labels them (same image)")  # fmt: skip
    default = result.backends.get("tuned")
    plain = result.backends.get(f"{backends_registry.default_backend().name}/fp32")  # what runs with no tuning
    if default is not None and default.tuned:
        vs = f": {default.p50_ms / plain.p50_ms:.2f}x {plain.backend} fp32 by p50 in this run" if plain and plain.p50_ms else ""
        say(f"default row ('zoo run {name}'): {default.tuned['summary']}{vs}")
    for key, why in result.failed.items():
        say(f"{key} FAILED: {why}")
    ratio = result.ratio()
    if ratio:
        say(f"{ratio['of']} ÷ {ratio['over']}: p50 {ratio['p50']:.2f}x, inference {ratio['inference']:.2f}x, "
                   f"throughput {ratio['throughput']:.2f}x, peak RSS {ratio['peak_rss']:.2f}x")  # fmt: skip
    if result.failed:
        raise typer.Exit(1)
