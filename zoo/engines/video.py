"""zoo run on a video: every frame (or every N-th) segmented, an overlay video written beside per-frame label maps
on request, through OpenCV's own reader and writer (cv2.VideoCapture / cv2.VideoWriter)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ImageError

if TYPE_CHECKING:
    from zoo.runners.runtime import Model

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg")
OVERLAY_SUFFIX = ".overlay.mp4"  # mp4v: OpenCV's pip wheels write it without extra codecs


def is_video(path: str | Path) -> bool:
    """Whether a path names a video file (by its suffix; the reader checks the content)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def segment_video(model: Model, path: Path, out: Path, *, every: int = 1, label_maps: bool = False,
                  legend: bool = True) -> dict[str, Any]:  # fmt: skip
    """Segment ``path`` frame by frame into ``out``: ``<stem>.overlay.mp4`` (the segmented frames, blended; with
    ``legend`` a strip below each naming the classes in that frame, of one height for the whole video), with
    ``label_maps`` a folder ``<stem>.labels/`` of ``<frame>.png`` class-id maps, and ``<stem>.json``. Returns that
    summary: frames read and segmented, the source's frame rate and the frames segmented per second."""
    import cv2
    import numpy as np

    from zoo import postprocess, progress
    from zoo.store.userfiles import write_user_file

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ImageError(f"{path}: OpenCV cannot read this video (unknown container or codec); convert it to an "
                         "H.264 .mp4 first, e.g. with ffmpeg")  # fmt: skip
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    out.mkdir(parents=True, exist_ok=True)
    stem = path.stem
    files: dict[str, Path] = {"overlay": out / f"{stem}{OVERLAY_SUFFIX}", "summary": out / f"{stem}.json"}
    if label_maps:
        files["labels"] = out / f"{stem}.labels"
        files["labels"].mkdir(exist_ok=True)
    arch = model.architecture
    names, colors = model.labels, model.colors
    rows = 0  # legend rows: enough for every class, so every frame has the same size
    counts = np.zeros(max(model.num_classes, 1), np.int64)
    writer = None
    read = segmented = 0
    started = time.perf_counter()
    try:
        with progress.counter(total, f"{path.name}", "frames") as bar:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                read += 1
                bar.update(1)
                if (read - 1) % every:
                    continue
                rgb = np.ascontiguousarray(bgr[:, :, ::-1])
                labels = model.to_labels(model.infer(model.prepare(rgb)), rgb.shape[:2])
                if writer is None:
                    rows = postprocess.legend_rows(rgb.shape[1], names) if legend else 0
                blended = postprocess.overlay_picture(rgb, labels, names, colors, arch.overlay_alpha, legend, rows)
                if writer is None:
                    h, w = blended.shape[:2]
                    writer = cv2.VideoWriter(str(files["overlay"]), cv2.VideoWriter_fourcc(*"mp4v"), fps / every, (w, h))
                writer.write(np.ascontiguousarray(blended[:, :, ::-1]))
                if label_maps:
                    cv2.imwrite(str(files["labels"] / f"{read - 1:06d}.png"),
                                labels if labels.dtype == np.uint8 else labels.astype(np.uint16))  # fmt: skip
                counts += np.bincount(labels.reshape(-1).astype(np.int64), minlength=len(counts))[: len(counts)]
                segmented += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if segmented == 0:
        raise ImageError(f"{path}: no frame could be decoded; is it a video OpenCV can read?")
    seconds = time.perf_counter() - started
    names = model.labels
    shares = {names[i]: round(float(c) / counts.sum(), 6) for i, c in enumerate(counts) if c}
    summary = {
        "input": str(path), "model": model.name, "backend": model.backend, "frames_read": read,
        "frames_segmented": segmented, "every": every, "source_fps": round(fps, 3), "seconds": round(seconds, 3),
        "frames_per_second": round(segmented / seconds, 3) if seconds else None,
        "classes": dict(sorted(shares.items(), key=lambda kv: -kv[1])),
        "outputs": {k: str(v) for k, v in files.items()},
    }  # fmt: skip
    write_user_file(files["summary"], json.dumps(summary, indent=2) + "\n", sync=False)
    return summary
