"""zoo run: segment images with a cached model or an .onnx file, writing label maps, colour masks and overlays.

The outputs per image and the overlapping pipeline are zoo/engines/segment.py's. A bad input is reported on stderr and
skipped; the run exits 1 at the end with a count.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from zoo.cli._app import app, backend_name, info, print_json, show_result, stdout_to_stderr
from zoo.cli.engine_options import (AddressFlag, BatchSizeFlag, EngineFlag, ThreadsPerWorkerFlag, WorkersFlag,
                                   ray_options)
from zoo.errors import ImageError
from zoo.store import artifacts


class Device(str, Enum):
    cpu = "cpu"
    gpu = "gpu"


@app.command()
def run(
    model: str = typer.Argument(
        ...,
        metavar="NAME",
        help="Registry name (see 'zoo list'), an .onnx file, or (with --backend paddle) a Paddle model folder.",
    ),  # fmt: skip
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Image files, folders of images, glob patterns."),
    out: Path = typer.Option(Path("zoo-out"), "--out", "-o", metavar="DIR", help="Where to write the results."),
    backend: Optional[str] = typer.Option(  # noqa: UP007 - typer needs Optional here
        None, "--backend", metavar="NAME", parser=backend_name,
        help="Inference backend: onnx, paddle or a plugin's (see 'zoo plugins'); default: the one marked default."),
    device: Device = typer.Option(Device.cpu, "--device", help="gpu fails unless the model really runs on CUDA."),
    threads: Optional[int] = typer.Option(  # noqa: UP007 - typer needs Optional here
        None, "--threads", min=1, help="CPU threads for inference (default: one per core)."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the per-image summaries as one JSON array on stdout."),
    precision: Optional[str] = typer.Option(  # noqa: UP007
        None, "--precision", metavar="fp32|bf16|fp16|int8",
        help="Run a reduced-precision variant (see 'zoo quantize') or engine precision; default: the tuned choice, "
        "else fp32."),  # fmt: skip
    offline: bool = typer.Option(
        False, "--offline", "--no-fetch", help="Never download: a model missing from the cache is an error."
    ),
    engine: EngineFlag = "local",
    address: AddressFlag = None,
    workers: WorkersFlag = None,
    batch_size: BatchSizeFlag = None,
    threads_per_worker: ThreadsPerWorkerFlag = None,
) -> None:
    """Segment images; write a label map, colour mask, overlay and JSON summary per image.

    A registry model missing from the cache is pulled and converted first (unless --offline).
    """
    from zoo.registry import backends
    from zoo.runners import runtime

    flags = (backend, precision)  # runtime.load decides from these: the tuned choice when both are None
    chosen = runtime.choose(model, backend, precision)  # 'zoo tune''s choice, else the default backend in fp32
    backend, precision = chosen.backend, chosen.precision
    # an impossible precision is refused before anything else, with the valid ones
    artifacts.check_precision(precision, backends.get(backend))
    ray = ray_options(engine, address=address, workers=workers, batch_size=batch_size,
                      threads_per_worker=threads_per_worker, threads=threads)
    if ray is not None:  # resumable, distributed; zoo/cli/cmd_run_ray.py
        from zoo.cli.cmd_run_ray import run_on_ray
        from zoo.engines.ray_cluster import require_ray

        require_ray()  # before the model is brought into the cache
        from zoo.engines import sources

        names = sources.expand(inputs)
        if not any(sources.is_uri(n) for n in names):  # the workers report each unreadable one, as they go
            unreadable_inputs([Path(n) for n in names])
        with stdout_to_stderr() if json_ else contextlib.nullcontext():
            target = provisioned(model, backend, precision, offline)
        return run_on_ray(target, inputs, out, backend=backend, precision=precision, device=device.value, json_=json_,
                          ray=ray)  # fmt: skip
    from zoo import images
    from zoo.engines import segment
    from zoo.runners import runtime

    paths = _without_outputs(images.expand_inputs(inputs), out)
    failures = unreadable_inputs(paths)
    for failure in failures:
        info(f"zoo: error: {failure.error}")
    readable = [p for p in paths if p not in {f.path for f in failures}]
    with stdout_to_stderr() if json_ else contextlib.nullcontext():
        target = provisioned(model, backend, precision, offline)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", runtime.MetadataWarning)
            loaded = runtime.load(target, backend=flags[0], device=device.value, threads=threads, precision=flags[1])
        for w in caught:  # zoo's own as one line; anything else (e.g. from paddle's import) as Python shows it
            if issubclass(w.category, (runtime.MetadataWarning, runtime.TunedWarning)):
                info(f"zoo: warning: {w.message}")
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        info(
            f"{loaded.name} ({loaded.architecture.name}, {loaded.num_classes} classes) on "
            f"{loaded.selection.describe() if loaded.selection else loaded.backend}: "
            f"providers {', '.join(loaded.providers)}, {loaded.threads} threads; "
            f"{len(paths)} input(s) → {out}"
        )
        started = time.perf_counter()
        summaries = []
        for result in segment.segment_files(loaded, readable, out):
            if not show_result(result, summaries, json_):
                failures.append(result)
        seconds = time.perf_counter() - started
    if json_:
        print_json(summaries)
    done = f"{len(summaries)} image(s) in {seconds:.1f} s"
    if failures:
        info(f"{done}; {len(failures)} of {len(paths)} inputs failed")
        raise typer.Exit(1)
    info(f"{done} → {out}")


def unreadable_inputs(paths: list[Path]) -> list[Any]:
    """The inputs that cannot be read at all (a Result each), found before the model loads (seconds) and before
    --out is made; when none can be read, the error (each engine checks its local inputs here)."""
    from zoo.engines import segment

    failures = [segment.Result(p, error=e) for p in paths if (e := segment.unreadable(p)) is not None]
    if len(failures) == len(paths) == 1:
        raise ImageError(failures[0].error)
    if failures and len(failures) == len(paths):
        for failure in failures:
            info(f"zoo: error: {failure.error}")
        raise ImageError(f"none of the {len(paths)} inputs can be read; give image files, folders or glob patterns")
    return failures


def provisioned(model: str, backend: str, precision: str, offline: bool) -> Any:
    """A registry name resolved once, with what ``backend`` runs at ``precision`` brought into the cache first (the
    one door, zoo/make/ensure.py); a path as it is. Both engines start here, so a missing model (and ``--offline``)
    behaves the same on either."""
    from zoo.make import ensure

    return ensure.prepare(model, backend, precision, fetch=not offline, progress=info)


def _without_outputs(paths: list[Path], out: Path) -> list[Path]:
    """Leave out zoo's own results when a run reads the folder it writes into."""
    from zoo.engines import segment

    target = out.resolve()
    kept = [p for p in paths if not (p.name.endswith(segment.OUTPUT_SUFFIXES) and p.resolve().parent == target)]
    if len(kept) < len(paths):
        info(f"skipping {len(paths) - len(kept)} earlier result file(s) of zoo run in {out}")
        if not kept:
            raise ImageError(f"the inputs are all results of an earlier 'zoo run' in {out}; give the original images")
    return kept
