"""zoo verify: prove ONNX Runtime agrees with Paddle Inference on a model, or show how much and where it does not."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Optional

import typer

from zoo.cli._app import (JsonFlag, ModelName, Threads, app, backend_pair, info, parse_size, print_json, say,
                          stdout_to_stderr, zoo_warnings)
from zoo.store import artifacts


def _described(d: dict) -> str:
    """One line of a runner's describe(): engine, version, providers, threads."""
    return (f"{d.get('engine', '?')} {d.get('version', '')}, {','.join(d.get('providers') or [])}, "
            f"{d.get('threads')} threads, {d.get('precision', 'fp32')}").replace(" ,", ",")


@app.command()
def verify(
    name: ModelName,
    image: Optional[list[str]] = typer.Option(  # noqa: UP007 - typer needs Optional here
        None, "--image", "-i", metavar="PATH", help="Image, folder or glob to compare on (repeatable)."
    ),
    size: str = typer.Option("512x1024", "--size", metavar="HxW", help="Size of the synthetic inputs (no --image)."),
    count: int = typer.Option(2, "--count", min=1, help="Number of synthetic inputs (no --image)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic inputs."),
    threads: Threads = None,
    min_agreement: Optional[float] = typer.Option(  # noqa: UP007
        None, "--min-agreement", min=0.0, max=1.0,
        help="Share of pixels that must agree (default 0.9999; 0.98 for a reduced --precision)."),  # fmt: skip
    rtol: float = typer.Option(1e-3, "--rtol", min=0.0, help="Logits outputs: relative tolerance."),
    atol_rel: float = typer.Option(
        1e-4, "--atol-rel", min=0.0, help="Logits outputs: absolute tolerance, as a fraction of max|reference|."
    ),
    report: Optional[Path] = typer.Option(  # noqa: UP007
        None, "--report", metavar="DIR", help="Write verify.json and a PNG per image marking disagreeing pixels."
    ),
    backend: Optional[str] = typer.Option(  # noqa: UP007
        None, "--backend", metavar="A,B",
        help="The two backends to compare, the reference first (default: the reference and the default backend, "
             "paddle,onnx as zoo ships; see 'zoo plugins')."),  # fmt: skip
    device: Optional[str] = typer.Option(  # noqa: UP007
        None, "--device", help="Where both backends run (default: each backend's first declared device)."),
    precision: str = typer.Option("fp32", "--precision", metavar=artifacts.PRECISION_HELP,
                                  help="What the second backend runs (e.g. the int8 variant); the reference is fp32."),
    tuned: bool = typer.Option(False, "--tuned", help="Re-check the tuned choice ('zoo tune') against float32 Paddle, "
                                                      "on the inputs and with the threshold it was chosen by."),
    json_: JsonFlag = False,
) -> None:
    """Compare ONNX Runtime with Paddle Inference (or any two backends) on the same inputs; exit 1 if they disagree."""
    from zoo.measure import verify as verify_mod
    from zoo.registry import backends, catalog

    hw = parse_size(size)
    handle = catalog.resolve(name)  # an unknown name fails before "verifying ..." is said
    if tuned:
        info(f"verifying the tuned choice of {name} against float32 Paddle")
        with stdout_to_stderr() if json_ else contextlib.nullcontext():
            result = verify_mod.verify_tuned(handle, report_dir=report)
        return _show(result, result.tolerance, json_)
    pair = backend_pair(backend) if backend is not None else backends.default_pair()
    images = None
    if image:
        from zoo.images import expand_inputs

        images = expand_inputs(image)
    tolerance = verify_mod.tolerance_for(precision, min_agreement, rtol, atol_rel)
    if report is not None:  # an unusable folder is refused now, not after the whole check
        from zoo.store import userfiles

        userfiles.check_folder(report, "--report")
    from zoo.make import ensure

    for b, p in zip(pair, ("fp32", precision)):  # what each runs is pulled and converted first when missing
        ensure.prepare(handle, b, p, progress=info)
    what = f"{len(images)} image(s)" if images else f"{count} synthetic {hw[0]}x{hw[1]} (HxW) image(s)"
    candidate = pair[1] if precision == "fp32" else f"{pair[1]} {precision}"
    info(f"verifying {name}: {pair[0]} (reference) vs {candidate} on {what}")
    from zoo import progress
    from zoo.runners.runtime import UntrainedWarning

    with stdout_to_stderr() if json_ else contextlib.nullcontext(), zoo_warnings(quiet=(UntrainedWarning,)), \
            progress.spinner(f"verifying {name} on {what}"):  # fmt: skip
        result = verify_mod.verify_model(
            handle, images=images, size=hw, count=count, seed=seed, threads=threads, tolerance=tolerance,
            report_dir=report, backends=pair, precision=precision, device=device,
        )  # fmt: skip
    _show(result, tolerance, json_)


def _show(result: Any, tolerance: Any, json_: bool) -> None:
    """Print a verify result (JSON or lines); exit 1 when it failed."""
    if json_:
        print_json(result.as_dict())
        info(result.summary())
    else:
        lines = []
        if len(result.images) > 1:
            lines += [f"  {check.image}: {check.comparison.summary(tolerance)}" for check in result.images]
        lines.append(result.summary())
        lines += [f"{b}: {_described(d)}" for b, d in result.backends.items()]
        if result.weights == "random":
            lines.append("note: this Paddle model has random weights (an untrained export)")
        if result.report:
            lines.append(f"report: {result.report}")
        say("\n".join(lines))  # wrapped at word boundaries to the terminal
    if not result.passed:
        raise typer.Exit(1)
