"""zoo eval --engine ray: confusion areas summed per batch on Ray workers, then on the driver (zoo/engines/distributed.py).

Not a command of its own: ``zoo eval`` calls :func:`eval_on_ray` when ``--engine ray`` is given. The metric is
additive, so the result equals the local engine's exactly.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import typer

from zoo.cli._app import info, print_json
from zoo.errors import EngineError


def _label(name: str, size: tuple[int, int], num_classes: int | None = None) -> Any:
    """What a worker reads for a label path (a module function, so Ray pickles it by reference)."""
    from zoo.measure import datasets

    return datasets.read_label(Path(name), size, num_classes)


def eval_on_ray(model: str, dataset: Any, *, backends: list[str], precisions: list[str], whole: bool,
                limit: int | None, absent: str, json_: bool, address: str | None, workers: int, batch_size: int,
                threads: int) -> None:  # fmt: skip
    """Score ``dataset`` with ``model`` on Ray; print the same JSON/table fields as the local engine."""
    from zoo.engines import distributed
    from zoo.measure import metrics

    if backends != ["onnx"] or precisions != ["fp32"]:
        raise EngineError("--engine ray evaluates the float32 ONNX model; drop --backend/--precision, or use "
                          "--engine local")  # fmt: skip
    if not whole:
        raise EngineError("--engine ray evaluates whole images; use --engine local for --mode slide, --scales or --flip")
    samples = dataset.samples[:limit] if limit else dataset.samples
    pairs = [(str(s.image), str(s.label)) for s in samples]
    distributed.connect(address)
    shipped = distributed.resolve_model(model, threads=threads)
    info(f"evaluating {shipped.name} on Ray: {len(pairs)} image(s), {workers} worker(s) x {threads} thread(s)")
    accumulate = functools.partial(metrics.areas_of, num_classes=shipped.num_classes)
    read_label = functools.partial(_label, num_classes=shipped.num_classes)  # ids outside the classes: named
    total, scored, errors = distributed.score(shipped, pairs, accumulate, read_label=read_label, address=address,
                                              workers=workers, batch_size=batch_size, threads_per_worker=threads)  # fmt: skip
    for message in errors:
        info(f"zoo: error: {message}")
    if total is None:
        raise EngineError(f"none of the {len(pairs)} images could be scored; see the errors above")
    summary = metrics.summarize(*total, absent=absent) | {"images": scored}
    if json_:
        print_json({"name": shipped.name, "engine": "ray", "data": str(dataset.path), "skipped": errors,
                    "backends": {"onnx": summary}})  # fmt: skip
    else:
        typer.echo(f"onnx (ray): mIoU {100 * summary['miou']:.2f}, acc {100 * summary['acc']:.2f}, "
                   f"kappa {summary['kappa']:.4f}, dice {100 * summary['dice']:.2f} on {scored} image(s); "
                   f"{summary['convention']}")  # fmt: skip
    if errors:
        info(f"{len(errors)} of {len(pairs)} images failed")
        raise typer.Exit(1)
