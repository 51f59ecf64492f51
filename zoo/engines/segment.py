"""Segmenting files: decode → preprocess → infer → colour, encode and write, as an overlapping pipeline.

For each input ``<stem>``, into the output folder: ``<stem>.labels.png`` (class ids: 8-bit, 16-bit past 255
classes), ``<stem>.color.png`` (the model's palette; the label map's size, no legend), ``<stem>.overlay.jpg`` (the mask
blended over the image, with a legend strip below naming the classes present, unless ``legend=False``) and
``<stem>.json`` (pixel share per class, size, model, backend, providers, timings). The pictures are
:mod:`zoo.postprocess`'s, as ``zoo serve`` and ``Segmentation.save`` make them.

Reader threads decode and preprocess the next images while the caller's thread runs the model (ONNX Runtime releases
the GIL), and a writer thread colours, encodes and writes the previous results. A bad input becomes a Result with an
error; the others go on.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.store.userfiles import write_user_file

if TYPE_CHECKING:
    import numpy as np

    from zoo.runners.runtime import Model

READERS = 2  # decode + preprocess threads
PREFETCH = 3  # images decoded ahead of the one being inferred
WRITE_BACKLOG = 2  # finished inferences waiting for the writer before the main thread waits too
OUTPUT_SUFFIXES = (".labels.png", ".color.png", ".overlay.jpg")  # per image, besides <stem>.json


@dataclass
class Result:
    """One input's outcome: a summary (also written as ``<stem>.json``), or the error message."""

    path: Path
    summary: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class _Prepared:
    path: Path
    rgb: np.ndarray
    x: np.ndarray
    notes: list[str]
    ms: dict[str, float]


def segment_files(model: Model, paths: Sequence[Path], out: Path, *, legend: bool = True) -> Iterator[Result]:
    """Segment every path into ``out``; yields a Result per input, in input order, as each is written."""
    stems = output_stems(paths)
    made = False  # the output folder is made for the first result, so a run that writes nothing leaves none
    readers = ThreadPoolExecutor(READERS, thread_name_prefix="zoo-read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="zoo-write")
    try:
        queue = iter(paths)
        reading: deque[tuple[Path, Future[_Prepared]]] = deque()
        writing: deque[tuple[Path, Future[dict[str, Any]]]] = deque()

        def read_more() -> None:
            while len(reading) < PREFETCH:
                path = next(queue, None)
                if path is None:
                    return
                reading.append((path, readers.submit(_prepare, model, path)))

        read_more()
        while reading:
            path, future = reading.popleft()
            read_more()
            try:
                prepared = future.result()
                started = time.perf_counter()
                output = model.infer(prepared.x)
                prepared.ms["inference"] = _ms(started)
            except ZooError as exc:  # queued behind earlier images so results stay in input order
                failed: Future[dict[str, Any]] = Future()
                failed.set_exception(exc)
                writing.append((path, failed))
            else:
                if not made:
                    make_output_folder(out)
                    made = True
                writing.append((path, writer.submit(_write, model, prepared, output, out, stems[path], legend)))
            while len(writing) > WRITE_BACKLOG or (writing and writing[0][1].done()):
                yield _written(*writing.popleft())
        while writing:
            yield _written(*writing.popleft())
    finally:
        readers.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True, cancel_futures=True)


def make_output_folder(out: Path) -> None:
    """Create ``out`` (and its parents) for results; a ZooError naming --out if that is not possible."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZooError(f"cannot create the output folder {out}: {exc.strerror or exc}; choose another with --out") from None


def unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read at all (missing, a folder, no permission), or None; cheap, no decoding."""
    import os

    if not path.exists():
        return f"{path}: no such file"
    if path.is_dir():
        return f"{path}: is a folder, not an image"
    if not os.access(path, os.R_OK):
        return f"{path}: permission denied; check the file's permissions"
    return None


def _written(path: Path, future: Future[dict[str, Any]]) -> Result:
    try:
        return Result(path, summary=future.result())
    except (ZooError, OSError) as exc:
        return Result(path, error=f"{path}: cannot write the results: {exc}" if isinstance(exc, OSError) else str(exc))


def _prepare(model: Model, path: Path) -> _Prepared:
    from zoo import images

    started = time.perf_counter()
    decoded = images.decode(path)
    read_ms = _ms(started)
    started = time.perf_counter()
    x = model.prepare(decoded.rgb)
    return _Prepared(path, decoded.rgb, x, decoded.notes, {"read": read_ms, "preprocess": _ms(started)})


def _write(model: Model, item: _Prepared, output: np.ndarray, out: Path, stem: str,
           legend: bool = True) -> dict[str, Any]:  # fmt: skip
    from zoo import postprocess

    started = time.perf_counter()
    h, w = item.rgb.shape[:2]
    labels = model.to_labels(output, (h, w))
    arch = model.architecture
    colors = model.colors  # one per class, as Segmentation.save and zoo serve draw: the same files
    overlay = postprocess.overlay_picture(item.rgb, labels, model.labels, colors, arch.overlay_alpha, legend)
    shares = postprocess.class_shares(labels, model.labels)
    item.ms["postprocess"] = _ms(started)

    started = time.perf_counter()
    files = {
        "labels": out / f"{stem}{OUTPUT_SUFFIXES[0]}",
        "color": out / f"{stem}{OUTPUT_SUFFIXES[1]}",
        "overlay": out / f"{stem}{OUTPUT_SUFFIXES[2]}",
        "summary": out / f"{stem}.json",
    }
    write_user_file(files["labels"], postprocess.label_png(labels), sync=False)
    write_user_file(files["color"], postprocess.color_png(labels, colors), sync=False)
    try:
        jpeg = postprocess.jpeg_bytes(overlay)
    except ValueError as exc:  # e.g. JPEG's 65535-pixel side limit
        raise OSError(f"{files['overlay'].name}: {exc}") from None
    write_user_file(files["overlay"], jpeg, sync=False)
    item.ms["write"] = _ms(started)
    summary = {
        "input": str(item.path),
        "width": w,
        "height": h,
        "model": model.name,
        "architecture": arch.name,
        "model_path": str(model.source),
        "backend": model.backend,
        "precision": getattr(model, "precision", None),  # any object with Model's run API may be segmented
        "config": _config(model),  # the tuned choice or the flags, and why
        "device": model.device,
        "providers": model.providers,
        "threads": model.threads,
        "num_classes": model.num_classes,
        "classes": shares,
        "outputs": {k: str(v) for k, v in files.items()},
        "timings_ms": {k: round(v, 2) for k, v in item.ms.items()},
        "warnings": list(item.notes),
    }
    write_user_file(files["summary"], json.dumps(summary, indent=2) + "\n", sync=False)
    return summary


def _config(model: Any) -> dict[str, Any] | None:
    selection = getattr(model, "selection", None)
    return selection.as_dict() if selection is not None else None


def png_bytes(ids: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """:func:`zoo.postprocess.png_bytes` (its home, where zoo serve writes the same files from)."""
    from zoo import postprocess

    return postprocess.png_bytes(ids, palette)


def output_stems(paths: Sequence[Path]) -> dict[Path, str]:
    """A distinct output name per input: its stem, with ``-2``, ``-3`` ... when stems repeat."""
    stems: dict[Path, str] = {}
    used: set[str] = set()
    for path in paths:
        stem, n = path.stem, 1
        while stem in used:
            n += 1
            stem = f"{path.stem}-{n}"
        used.add(stem)
        stems[path] = stem
    return stems


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


# The per-image steps under public names, for engines that run them elsewhere (zoo/engines/distributed.py's Ray workers):
# the same outputs, file for file.
Prepared = _Prepared
write_outputs = _write
