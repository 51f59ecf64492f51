"""zoo run --engine ray: the same outputs and exit codes as the local engine, on a Ray cluster (zoo/engines/distributed.py).

Not a command of its own: ``zoo run`` calls :func:`run_on_ray` when ``--engine ray`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from zoo.cli._app import info, print_json, show_result, stdout_to_stderr, with_palette


def run_on_ray(model: Any, inputs: list[str], out: Path, *, backend: str, precision: str, device: str, json_: bool,
               ray: Any, palette: tuple[tuple[int, int, int], ...] | None = None,
               legend: bool = True) -> None:  # fmt: skip
    """Verify the model here, segment on the workers, print per image and images/s; exit 1 on failures.

    ``model`` is what zoo run resolved and brought into the cache (as for the local engine); ``ray`` its RayOptions;
    ``palette`` and ``legend`` what --palette and --legend/--no-legend gave, as for the local engine.
    """
    import contextlib

    from zoo.engines import distributed, ray_cluster, shipping

    summaries: list[dict[str, Any]] = []

    def show(result: Any) -> None:
        show_result(result, summaries, json_)

    with stdout_to_stderr() if json_ else contextlib.nullcontext():
        ray.check()
        ray_cluster.connect(ray.address)
        handle = shipping.resolve_model(model, backend=backend, precision=precision, device=device,
                                        threads=ray.threads_per_worker, ship=ray.ship)  # fmt: skip
        handle = with_palette(handle, palette)
        info(f"{handle.name} ({handle.architecture.name}, {handle.num_classes} classes) on {handle.backend}, Ray: "
             f"{ray.workers} worker(s) x {handle.threads} thread(s), batches of {ray.batch_size} → {out}")  # fmt: skip
        try:
            outcome = distributed.run(handle, inputs, out, address=ray.address, workers=ray.workers,
                                      batch_size=ray.batch_size, threads_per_worker=ray.threads_per_worker,
                                      ship=ray.ship, legend=legend, on_result=show,
                                      progress=lambda line: info(f"zoo: {line}"))  # fmt: skip
        finally:
            ray_cluster.disconnect()
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
