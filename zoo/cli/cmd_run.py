"""zoo run: segment images with a cached model or an .onnx file, writing label maps, colour masks and overlays.

The outputs per image and the overlapping pipeline are zoo/engines/segment.py's. A bad input is reported on stderr and
skipped; the run exits 1 at the end with a count.
"""

from __future__ import annotations

import contextlib
import time
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from zoo.cli._app import (app, backend_name, info, print_json, say, show_result, stdout_to_stderr, with_palette,
                          zoo_warnings)
from zoo.cli.engine_options import (AddressFlag, BatchSizeFlag, EngineFlag, ThreadsPerWorkerFlag, WorkersFlag,
                                   ray_options, start_ray)
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
    every: int = typer.Option(1, "--every", min=1, metavar="N", help="Videos: segment every N-th frame."),
    label_maps: bool = typer.Option(False, "--label-maps", help="Videos: also write each frame's label map (PNG)."),
    precision: Optional[str] = typer.Option(  # noqa: UP007
        None, "--precision", metavar="fp32|bf16|fp16|int8",
        help="Run a reduced-precision variant (see 'zoo quantize') or engine precision; default: the tuned choice, "
        "else fp32."),  # fmt: skip
    offline: bool = typer.Option(
        False, "--offline", "--no-fetch", help="Never download: a model missing from the cache is an error."
    ),
    palette: Optional[str] = typer.Option(  # noqa: UP007
        None, "--palette", metavar="PRESET|FILE",
        help="Draw with these colours instead of the model's: a preset (cityscapes, ade20k, voc, camvid, paddleseg: "
        "PaddleSeg's pseudo-colour map) or a file with one 'R G B' or '#rrggbb' per line."),  # fmt: skip
    legend: bool = typer.Option(True, "--legend/--no-legend",
                                help="A legend strip (classes present: colour and name) below each overlay."),
    engine: EngineFlag = "local",
    address: AddressFlag = None,
    workers: WorkersFlag = None,
    batch_size: BatchSizeFlag = None,
    threads_per_worker: ThreadsPerWorkerFlag = None,
) -> None:
    """Segment images; write a label map, colour mask, overlay and JSON summary per image.

    A registry model missing from the cache is pulled and converted first (unless --offline).
    """
    from zoo.registry import backends, model_facts
    from zoo.runners import runtime

    colours = model_facts.read_palette(palette) if palette else None  # a bad --palette fails before anything loads
    flags = (backend, precision)  # runtime.load decides from these: the tuned choice when both are None
    ray = ray_options(engine, address=address, workers=workers, batch_size=batch_size,
                      threads_per_worker=threads_per_worker, threads=threads)  # flags that do not fit: said first
    chosen = runtime.choose(model, backend, precision)  # 'zoo tune''s choice, else the default backend in fp32
    backend, precision = chosen.backend, chosen.precision
    # an impossible precision is refused before anything else, with the valid ones
    artifacts.check_precision(precision, backends.get(backend))
    if ray is not None:  # resumable, distributed: run_on_ray below
        from zoo.engines import sources

        names = sources.expand(inputs)
        if not any(sources.is_uri(n) for n in names):  # the workers report each unreadable one, as they go
            unreadable_inputs([Path(n) for n in names])
        with stdout_to_stderr() if json_ else contextlib.nullcontext():
            target = provisioned(model, backend, precision, offline)
        return run_on_ray(target, inputs, out, backend=backend, precision=precision, device=device.value, json_=json_,
                          ray=ray, palette=colours, legend=legend, chosen=chosen)  # fmt: skip
    from zoo.engines import video

    if any(video.is_video(i) for i in inputs):
        return run_videos(model, inputs, out, backend=backend, device=device.value, threads=threads,
                          precision=precision, offline=offline, every=every, label_maps=label_maps, json_=json_,
                          palette=colours, legend=legend)
    from zoo import images, progress
    from zoo.engines import segment

    paths = _without_outputs(images.expand_inputs(inputs), out)
    failures = unreadable_inputs(paths)
    for failure in failures:
        info(f"zoo: error: {failure.error}")
    readable = [p for p in paths if p not in {f.path for f in failures}]
    with stdout_to_stderr() if json_ else contextlib.nullcontext():
        loaded = with_palette(load(model, backend, device.value, threads, precision, offline, flags=flags), colours)
        info(
            f"{loaded.name} ({loaded.architecture.name}, {loaded.num_classes} classes) on "
            f"{loaded.selection.describe() if loaded.selection else loaded.backend}: "
            f"providers {', '.join(loaded.providers)}, {loaded.threads} threads; "
            f"{len(paths)} input(s) → {out}"
        )
        started = time.perf_counter()
        summaries = []
        with progress.counter(len(readable), "segmenting", "images") as bar:
            for result in segment.segment_files(loaded, readable, out, legend=legend):
                if not show_result(result, summaries, json_):
                    failures.append(result)
                bar.update(1)
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


def load(model: str, backend: str, device: str, threads: int | None, precision: str, offline: bool,
         flags: tuple[str | None, str | None] | None = None) -> Any:  # fmt: skip
    """:func:`provisioned`, then loaded, zoo's own warnings while loading as one line each (an untrained export
    included), a spinner while it loads. ``flags``: the --backend/--precision as given (both None: runtime.load
    uses the tuned choice and says so)."""
    from zoo import progress
    from zoo.runners import runtime

    target = provisioned(model, backend, precision, offline)
    with zoo_warnings(), progress.spinner(f"loading {model} on {backend}"):
        given = flags if flags is not None else (backend, precision)
        return runtime.load(target, backend=given[0], device=device, threads=threads, precision=given[1])


def run_videos(model: str, inputs: list[str], out: Path, *, backend: str, device: str, threads: int | None,
               precision: str, offline: bool, every: int, label_maps: bool, json_: bool,
               palette: tuple[tuple[int, int, int], ...] | None = None, legend: bool = True) -> None:  # fmt: skip
    """``zoo run`` on video files (zoo/engines/video.py): one result line per video, with frames/s."""
    from zoo.engines import video

    if not all(video.is_video(i) for i in inputs):
        raise ImageError("give videos and images to separate 'zoo run' commands")
    with stdout_to_stderr() if json_ else contextlib.nullcontext():
        loaded = with_palette(load(model, backend, device, threads, precision, offline), palette)
        summaries = []
        for clip in inputs:
            done = video.segment_video(loaded, Path(clip), out, every=every, label_maps=label_maps, legend=legend)
            summaries.append(done)
            if not json_:
                say(f"{Path(clip).name}: {done['frames_segmented']} of {done['frames_read']} frames in "
                    f"{done['seconds']:.1f} s ({done['frames_per_second']:.1f} frames/s) → {done['outputs']['overlay']}")
    if json_:
        print_json(summaries)


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


def run_on_ray(model: Any, inputs: list[str], out: Path, *, backend: str, precision: str, device: str, json_: bool,
               ray: Any, palette: tuple[tuple[int, int, int], ...] | None = None, legend: bool = True,
               chosen: Any = None) -> None:  # fmt: skip
    """``zoo run --engine ray``: the same outputs and exit codes as the local engine, on a Ray cluster
    (zoo/engines/distributed.py). Verify the model here, segment on the workers, print per image and images/s; exit 1
    on failures. ``model`` is what zoo run resolved and brought into the cache (as for the local engine); ``ray`` its
    RayOptions; ``palette`` and ``legend`` what --palette and --legend/--no-legend gave, as for the local engine;
    ``chosen`` the Selection that named backend and precision (a tuned one brings its runner options)."""
    from zoo.engines import distributed, ray_cluster, shipping

    summaries: list[dict[str, Any]] = []

    def show(result: Any) -> None:
        show_result(result, summaries, json_)

    with stdout_to_stderr() if json_ else contextlib.nullcontext():
        start_ray(ray)
        handle = shipping.resolve_model(model, backend=backend, precision=precision, device=device,
                                        threads=ray.threads_per_worker, ship=ray.ship, chosen=chosen)  # fmt: skip
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
