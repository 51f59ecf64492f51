"""zoo bench: latency, throughput, stage split and peak memory of a cached model, per backend (see zoo/measure/bench.py)."""

from __future__ import annotations

from typing import Optional

import typer

from zoo.cli._app import JsonFlag, ModelName, Threads, app, backend_list, info, parse_size, print_json, table


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
) -> None:
    """Time a model on ONNX Runtime and Paddle Inference (or any backends), each in its own process."""
    from zoo.measure import bench as bench_mod
    from zoo.registry import catalog

    from zoo.make import ensure
    from zoo.runners import runtime

    hw = parse_size(size)
    handle = catalog.resolve(name)
    chosen = runtime.choose(handle, backend, precision)  # no flags: the tuned choice is the default row
    if chosen.note:
        info(f"zoo: warning: {chosen.note}")
    backends = tuple((backend or backend_list("both")).split(","))
    precisions = _precisions(precision or "fp32", backends)
    say = lambda line: info(f"bench {name}: {line}")  # noqa: E731
    for spec, p in bench_mod.runs_of(backends, precisions):  # the one door: what each row runs, made sure of first
        ensure.prepare(handle, spec.name, p, progress=say)
    tuned = chosen if chosen.tuned else None
    if tuned is not None:
        ensure.prepare(handle, tuned.backend, tuned.precision, progress=say)
    result = bench_mod.bench(handle, backends=backends, size=hw, threads=threads, warmup=warmup, runs=runs,
                             progress=info, precisions=precisions, device=device, tuned=tuned)  # fmt: skip
    if json_:
        print_json(result.as_dict())
        return
    typer.echo(f"{name} at {hw[0]}x{hw[1]}, {result.threads} threads, {runs} runs after {warmup} warm-up "
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
    typer.echo(table(rows, header))
    if result.reference:
        ref = result.backends[result.reference]
        typer.echo(f"SPEED-UP = p50 of {ref.backend} {ref.precision} ÷ the row's; LABELS = share of pixels labelled as "
                   f"{ref.backend} {ref.precision} labels them (same image)")  # fmt: skip
    default = result.backends.get("tuned")
    ort = result.backends.get("onnx/fp32")
    if default is not None and default.tuned:
        vs = f": {default.p50_ms / ort.p50_ms:.2f}x onnx fp32 by p50 in this run" if ort and ort.p50_ms else ""
        typer.echo(f"default row ('zoo run {name}'): {default.tuned['summary']}{vs}")
    ratio = result.ratio()
    if ratio:
        typer.echo(f"{ratio['of']} ÷ {ratio['over']}: p50 {ratio['p50']:.2f}x, inference {ratio['inference']:.2f}x, "
                   f"throughput {ratio['throughput']:.2f}x, peak RSS {ratio['peak_rss']:.2f}x")  # fmt: skip
