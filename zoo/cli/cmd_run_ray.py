"""zoo run --engine ray: the same outputs and exit codes as the local engine, on a Ray cluster (zoo/engines/distributed.py).

Not a command of its own: ``zoo run`` calls :func:`run_on_ray` when ``--engine ray`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from zoo.cli._app import info, print_json, show_result, stdout_to_stderr
from zoo.errors import EngineError


def run_on_ray(model: str, inputs: list[str], out: Path, *, backend: str | None, device: str, json_: bool,
               address: str | None, workers: int, batch_size: int, threads: int,
               precision: str | None = None) -> None:  # fmt: skip
    """Resolve and verify the model here, segment on the workers, print per image and images/s; exit 1 on failures."""
    import contextlib

    from zoo.engines import distributed
    from zoo.runners import runtime

    if backend not in (None, "onnx"):
        raise EngineError(f"--engine ray runs ONNX models; drop --backend {backend}, or use --engine local")
    chosen = runtime.choose(model, backend, precision)  # the tuned choice, when no flag says otherwise
    if chosen.note:
        info(f"zoo: warning: {chosen.note}")
    if chosen.backend != "onnx":  # tuned for another engine: Ray's workers run ONNX Runtime
        info(f"zoo: the tuned choice {chosen.describe()} is not an ONNX Runtime one; --engine ray runs onnx/fp32")
        chosen = runtime.Selection("onnx", "fp32", None)
    elif chosen.tuned:
        info(f"zoo: using the tuned choice {chosen.describe()} (Ray workers keep their own thread count)")
    summaries: list[dict[str, Any]] = []

    def show(result: Any) -> None:
        show_result(result, summaries, json_)

    with stdout_to_stderr() if json_ else contextlib.nullcontext():
        distributed.connect(address)
        handle = distributed.resolve_model(model, device=device, threads=threads, precision=chosen.precision)
        info(f"{handle.name} ({handle.architecture.name}, {handle.num_classes} classes) on Ray: {workers} worker(s) x "
             f"{handle.threads} thread(s), batches of {batch_size} → {out}")  # fmt: skip
        outcome = distributed.run(handle, inputs, out, workers=workers, batch_size=batch_size,
                                  threads_per_worker=threads, on_result=show,
                                  progress=lambda line: info(f"zoo: {line}"))  # fmt: skip
    if json_:
        print_json([r.summary for r in outcome.results if r.summary is not None])
    if outcome.skipped:
        info(f"{len(outcome.skipped)} image(s) already done in {out} (resumed)")
    rate = len(outcome.results) / outcome.seconds if outcome.seconds > 0 else 0.0
    done = f"{len(summaries)} image(s) in {outcome.seconds:.1f} s ({rate:.1f} images/s)"
    failures = outcome.failures
    if failures:
        info(f"{done}; {len(failures)} of {outcome.total} inputs failed")
        raise typer.Exit(1)
    info(f"{done} → {out}")
