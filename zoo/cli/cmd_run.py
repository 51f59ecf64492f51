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

from zoo.cli._app import app, backend_name, info, print_json, say, show_result, stdout_to_stderr, zoo_warnings
from zoo.errors import ImageError


class Device(str, Enum):
    cpu = "cpu"
    gpu = "gpu"


class Engine(str, Enum):
    local = "local"
    ray = "ray"


@app.command()
def run(
    model: str = typer.Argument(
        ...,
        metavar="NAME",
        help="Registry name (see 'zoo list'), an .onnx file, or (with --backend paddle) a Paddle model folder.",
    ),  # fmt: skip
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Image files, folders of images, glob patterns."),
    out: Path = typer.Option(Path("zoo-out"), "--out", "-o", metavar="DIR", help="Where to write the results."),
    backend: str = typer.Option("onnx", "--backend", metavar="NAME", parser=backend_name,
                                help="Inference backend: onnx, paddle or a plugin's (see 'zoo plugins')."),  # fmt: skip
    device: Device = typer.Option(Device.cpu, "--device", help="gpu fails unless the model really runs on CUDA."),
    threads: Optional[int] = typer.Option(  # noqa: UP007 - typer needs Optional here
        None, "--threads", min=1, help="CPU threads for inference (default: one per core)."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the per-image summaries as one JSON array on stdout."),
    every: int = typer.Option(1, "--every", min=1, metavar="N", help="Videos: segment every N-th frame."),
    label_maps: bool = typer.Option(False, "--label-maps", help="Videos: also write each frame's label map (PNG)."),
    precision: str = typer.Option("fp32", "--precision", metavar="fp32|bf16|fp16|int8",
                                  help="Run a reduced-precision variant (see 'zoo quantize') or engine precision."),
    offline: bool = typer.Option(
        False, "--offline", "--no-fetch", help="Never download: a model missing from the cache is an error."
    ),
    engine: Engine = typer.Option(Engine.local, "--engine", help="local, or ray: Ray Data workers (zoo[ray])."),
    address: Optional[str] = typer.Option(  # noqa: UP007
        None, "--address", help="ray: 'auto' or ray://HOST:PORT (default: start a local Ray)."
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="ray: worker actors, each with its own session."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="ray: images per batch sent to a worker."),
    threads_per_worker: int = typer.Option(
        1, "--threads-per-worker", min=1, help="ray: inference threads (and CPUs) per worker."
    ),
) -> None:
    """Segment images; write a label map, colour mask, overlay and JSON summary per image.

    A registry model missing from the cache is pulled and converted first (unless --offline).
    """
    if engine is Engine.ray:  # resumable, distributed; zoo/cli/cmd_run_ray.py
        from zoo.cli.cmd_run_ray import run_on_ray

        return run_on_ray(model, inputs, out, backend=backend, device=device.value, json_=json_, address=address,
                          workers=workers, batch_size=batch_size, threads=threads_per_worker)  # fmt: skip
    from zoo.engines import video

    if any(video.is_video(i) for i in inputs):
        if not all(video.is_video(i) for i in inputs):
            raise ImageError("give videos and images to separate 'zoo run' commands")
        with stdout_to_stderr() if json_ else contextlib.nullcontext():
            loaded = _load(model, backend, device.value, threads, precision, offline)
            summaries = []
            for clip in inputs:
                done = video.segment_video(loaded, Path(clip), out, every=every, label_maps=label_maps)
                summaries.append(done)
                if not json_:
                    say(f"{Path(clip).name}: {done['frames_segmented']} of {done['frames_read']} frames in {done['seconds']:.1f} s "
                        f"({done['frames_per_second']:.1f} frames/s) → {done['outputs']['overlay']}")  # fmt: skip
        if json_:
            print_json(summaries)
        return
    from zoo import images, progress
    from zoo.engines import segment

    paths = _without_outputs(images.expand_inputs(inputs), out)
    # inputs that cannot be read at all are found before the model loads (seconds) and before --out is made
    failures = [segment.Result(p, error=e) for p in paths if (e := segment.unreadable(p)) is not None]
    if len(failures) == len(paths) == 1:
        raise ImageError(failures[0].error)
    for failure in failures:
        info(f"zoo: error: {failure.error}")
    if len(failures) == len(paths):
        raise ImageError(f"none of the {len(paths)} inputs can be read; give image files, folders or glob patterns")
    readable = [p for p in paths if p not in {f.path for f in failures}]
    with stdout_to_stderr() if json_ else contextlib.nullcontext():
        loaded = _load(model, backend, device.value, threads, precision, offline)
        info(
            f"{loaded.name} ({loaded.architecture.name}, {loaded.num_classes} classes) on {loaded.backend}: "
            f"providers {', '.join(loaded.providers)}, {loaded.threads} threads; "
            f"{len(paths)} input(s) → {out}"
        )
        started = time.perf_counter()
        summaries = []
        with progress.counter(len(readable), "segmenting", "images") as bar:
            for result in segment.segment_files(loaded, readable, out):
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


def _load(model: str, backend: str, device: str, threads: int | None, precision: str, offline: bool) -> Any:
    """The model to run: a registry name resolved once, with what is missing brought first (unless offline);
    zoo's own warnings while loading as one line each."""
    from zoo import progress
    from zoo.runners import runtime

    target: Any = model
    if runtime._as_path(model) is None:  # a registry name: resolved once, and what is missing brought first
        from zoo.make import provision
        from zoo.registry import backends, catalog

        target = catalog.resolve(model)
        provision.ensure(target, formats=backends.get(backend).formats, fetch=not offline, progress=info)
    with zoo_warnings(), progress.spinner(f"loading {model} on {backend}"):
        return runtime.load(target, backend=backend, device=device, threads=threads, precision=precision)


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
