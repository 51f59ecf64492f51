"""zoo run on a video: every frame (or every N-th) segmented, an overlay video, per-frame label maps on request,
progress in frames on a terminal, frames/s reported. Test clips are written with cv2.VideoWriter; the expected label
maps come from a bare onnxruntime session on the frames as OpenCV decodes them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

import zoo
from tests.conftest import run_zoo
from tests.terminal import run_on_terminal
from zoo import postprocess
from zoo.runners.runtime import preprocess
from zoo.synthetic import street_scene

NAME = "unet-tiny"
FRAMES = 6


def _clip(path: Path, frames: int = FRAMES) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (128, 64))
    for i in range(frames):
        writer.write(street_scene(64, 128, seed=i)[:, :, ::-1].copy())
    writer.release()
    return path


def _decoded(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            return frames
        frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))


def test_video_every_second_frame_with_label_maps(models, tmp_path):
    onnx = models.install_converted(NAME)
    clip = _clip(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    proc = run_zoo("run", NAME, str(clip), "--out", str(out), "--every", "2", "--label-maps", "--json", check=True)
    summary = json.loads(proc.stdout)[0]
    assert summary["frames_read"] == FRAMES and summary["frames_segmented"] == FRAMES // 2
    assert summary["frames_per_second"] > 0 and summary["source_fps"] == 10.0
    overlay = _decoded(out / "clip.overlay.mp4")
    names = zoo.load(NAME).labels
    strip = postprocess.legend_rows(128, names) * postprocess.LEGEND_ROW + postprocess.LEGEND_PAD
    assert strip > postprocess.LEGEND_PAD and len(names) > 1
    # every frame: the picture, then one legend strip of the same height (white, with swatches and names)
    assert len(overlay) == FRAMES // 2 and {f.shape for f in overlay} == {(64 + strip, 128, 3)}
    for frame in overlay:
        band = frame[64:].astype(int)
        assert (band.min(axis=2) > 200).mean() > 0.6, "the strip is mostly white paper"
        assert (band.max(axis=2) < 80).any(), "dark text and swatch outlines are drawn on it"
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    spec = zoo.architecture("unet").input
    frames = _decoded(clip)
    for index in range(0, FRAMES, 2):
        got = cv2.imread(str(out / "clip.labels" / f"{index:06d}.png"), cv2.IMREAD_UNCHANGED)
        expected = session.run(None, {session.get_inputs()[0].name: preprocess(frames[index], spec)})[0]
        assert np.array_equal(got, np.asarray(expected).reshape(64, 128)), index
    assert sorted(p.name for p in (out / "clip.labels").iterdir()) == [f"{i:06d}.png" for i in range(0, FRAMES, 2)]


def test_video_progress_in_frames_on_a_terminal(models, tmp_path):
    models.install_converted(NAME)
    clip = _clip(tmp_path / "clip.mp4")
    code, out, screen = run_on_terminal("run", NAME, str(clip), "--out", str(tmp_path / "out"), "--no-legend")
    assert code == 0, screen
    assert re.search(rf"clip\.mp4: \d/{FRAMES} frames \[", screen), screen
    assert re.search(rf"clip\.mp4: {FRAMES} of {FRAMES} frames in [\d.]+ s \([\d.]+ frames/s\)", " ".join(out.split())), out
    assert (tmp_path / "out" / "clip.overlay.mp4").is_file() and not (tmp_path / "out" / "clip.labels").exists()
    assert {f.shape for f in _decoded(tmp_path / "out" / "clip.overlay.mp4")} == {(64, 128, 3)}  # --no-legend
