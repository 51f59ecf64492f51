"""The Python API people know: model(x) == model.predict(x); arrays, paths, lists and batches; results with
.labels, .colorize(), .overlay(), .save() and probabilities; the README's example, run as written."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

import zoo
from zoo.errors import BackendError
from zoo.runners.runtime import preprocess
from zoo.synthetic import street_scene

REPO = Path(__file__).resolve().parents[1]
NAME = "unet-tiny"


def _bare_labels(onnx: Path, rgb: np.ndarray) -> np.ndarray:
    """The oracle: a bare onnxruntime session on the plugin's preprocessing, argmax done by the export itself."""
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    x = preprocess(rgb, zoo.architecture("unet").input)
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0]).reshape(rgb.shape[:2])


def test_call_predict_and_every_input_form(models, tmp_path):
    onnx = models.install_converted(NAME)
    model = zoo.load(NAME)
    a, b = street_scene(64, 128, seed=1), street_scene(64, 128, seed=2)
    expected_a, expected_b = _bare_labels(onnx, a), _bare_labels(onnx, b)
    seg = model(a)
    assert np.array_equal(seg, expected_a) and np.array_equal(model.predict(a), seg)
    assert type(seg.labels) is np.ndarray and seg.labels.shape == (64, 128)
    path = tmp_path / "b.png"
    cv2.imwrite(str(path), b[:, :, ::-1])
    from_path = model(str(path))
    assert np.array_equal(from_path, expected_b) and from_path.source == str(path)
    listed = model([a, path])
    batch = model(np.stack([a, b]))
    assert [np.array_equal(r, e) for r, e in zip(listed, [expected_a, expected_b])] == [True, True]
    assert [np.array_equal(r, e) for r, e in zip(batch, [expected_a, expected_b])] == [True, True]
    # pictures: the colour of each pixel is its class's palette entry; the legend is a strip below, naming the
    # classes present (so it differs from the bare mask only there)
    colors = np.asarray(model.colors, np.uint8)
    assert np.array_equal(seg.colorize(), colors[seg.labels])
    with_legend = seg.colorize(legend=True)
    assert with_legend.shape[1] == 128 and with_legend.shape[0] > 64 and np.array_equal(with_legend[:64], colors[seg.labels])
    strip = with_legend[64:].reshape(-1, 3)
    for cid in np.unique(seg.labels):
        assert (strip == colors[cid]).all(axis=1).any()  # a swatch of every class present
    assert seg.overlay().shape == a.shape
    files = seg.save(tmp_path / "out", "a")
    assert np.array_equal(cv2.imread(str(files["labels"]), cv2.IMREAD_UNCHANGED), expected_a)
    assert {"labels", "color", "overlay"} <= set(files)
    with pytest.raises(BackendError, match="--output-op softmax"):
        model(a, probabilities=True)


def test_probabilities_from_a_scores_export(models):
    models.install_converted(NAME, output_op="softmax")
    model = zoo.load(NAME)
    rgb = street_scene(64, 128, seed=3)
    seg = model(rgb, probabilities=True)
    p = seg.probabilities
    assert p.shape == (model.num_classes, 64, 128) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-4)  # probabilities, per pixel
    assert np.array_equal(p.argmax(axis=0), seg.labels)  # and they agree with the label map


def test_readme_python_example_runs(models, tmp_path, monkeypatch):
    models.install_converted("fcn")
    text = (REPO / "README.md").read_text()
    code = re.search(r"<!-- python-example -->\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == [
        "prediction.color.png", "prediction.labels.png", "prediction.overlay.jpg"]  # zoo run's files
