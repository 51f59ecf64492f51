"""Each report folder gets one index.html that renders offline: checked in real headless Chromium, by what the
screenshot shows (the page's text and the legend's colours drawn), not by the file existing."""

from __future__ import annotations

import json

import numpy as np

from tests.browser import has_colour, screenshot
from tests.conftest import run_zoo

NAME = "unet-tiny"


def test_verify_report_index_renders_with_legend_and_side_by_side_maps(models, tmp_path):
    import cv2

    import zoo

    models.install_converted(NAME)
    report = tmp_path / "rep"
    proc = run_zoo("verify", NAME, "--size", "64x128", "--count", "2", "--report", str(report))
    assert proc.returncode in (0, 1), proc.stderr
    page = report / "index.html"
    text = page.read_text()
    assert "http" not in text.replace("<!doctype html>", "")  # nothing remote: readable offline
    sides = sorted(report.glob("*.sides.png"))
    assert len(sides) == 2 and all(s.name in text for s in sides)
    # the side-by-side picture: reference and candidate colour maps of the same size, legend strip below
    picture = cv2.imread(str(sides[0]))[:, :, ::-1]
    assert picture.shape[1] == 3 * 128 + 2 * 8 and picture.shape[0] > 64 + 22
    shot = screenshot(page, tmp_path / "shot.png")
    assert shot.std() > 10 and (shot < 60).all(axis=2).sum() > 500  # drawn: dark text on a light page
    colors = zoo.architecture("unet").colors()
    labels = zoo.architecture("unet").labels
    legend = [name for name in labels if f"</i>{name}</span>" in text]
    assert legend, text
    for name in legend:
        assert has_colour(shot, tuple(int(c) for c in colors[labels.index(name)])), name
    # the side-by-side PNGs were loaded by the browser: a map colour fills far more than the legend swatches could
    filled = max(int((shot == np.asarray(colors[labels.index(n)], np.uint8)).all(axis=2).sum()) for n in legend)
    assert filled > 5000, filled
    assert np.array_equal(shot.shape[:2], (1600, 1280))


def test_eval_report_index_renders_chart_worst_panels_and_legend(models, tmp_path):
    import cv2

    import zoo
    from zoo import synthetic
    from zoo.measure.eval_report import BAR_COLORS, DIAGONAL

    models.install_converted(NAME)
    data = synthetic.write_labelled_dataset(tmp_path / "data", 3, 64, 128, layout="folders", num_classes=4)
    report = tmp_path / "rep"
    run_zoo("eval", NAME, "--data", str(data), "--report", str(report), check=True)
    page = report / "index.html"
    text = page.read_text()
    worst = sorted((report / "worst").iterdir())
    assert worst and all(f"worst/{p.name}" in text for p in worst) and "class_iou.png" in text
    panel = cv2.imread(str(worst[0]))
    assert panel.shape[0] == 64 + 40  # the caption band above the four pictures
    # the confusion matrix with its caption; its raw counts in eval.json, one row and column per class
    confusion = cv2.imread(str(report / "confusion_onnx.png"))
    assert confusion is not None and "<img src='confusion_onnx.png'" in text
    assert "each row is a ground-truth class and sums to 100 %" in text
    matrix = json.loads((report / "eval.json").read_text())["backends"]["onnx"]["confusion"]
    assert [len(row) for row in matrix] == [len(zoo.architecture("unet").labels)] * len(zoo.architecture("unet").labels)
    outline = int((confusion[:, :, ::-1] == np.asarray(DIAGONAL, np.uint8)).all(axis=2).sum())
    shot = screenshot(page, tmp_path / "shot.png")
    assert (shot < 60).all(axis=2).sum() > 500  # text drawn
    # the bar chart was loaded and drawn: its first backend's bar colour covers far more than a few pixels
    assert has_colour(shot, BAR_COLORS[0], min_pixels=300)
    # the confusion picture was loaded and drawn at its size: every pixel of its outlined diagonal is on the page
    assert outline > 0 and has_colour(shot, DIAGONAL, min_pixels=outline)
    colors = zoo.architecture("unet").colors()
    for i, _name in enumerate(zoo.architecture("unet").labels):
        assert has_colour(shot, tuple(int(c) for c in colors[i]), min_pixels=18 * 18 - 40)  # every legend swatch


def test_bench_report_index_renders_latency_and_memory_per_row(models, tmp_path):
    from zoo.measure.bench_report import LATENCY, MEMORY

    models.install_converted(NAME)
    report = tmp_path / "rep"
    run_zoo("bench", NAME, "--backend", "onnx,paddle", "--size", "64x128", "--runs", "2", "--warmup", "0",
            "--report", str(report), check=True)  # fmt: skip
    text = (report / "index.html").read_text()
    assert "bench.png" in text and "<td>onnx/fp32</td>" in text and "<td>paddle/fp32</td>" in text
    shot = screenshot(report / "index.html", tmp_path / "shot.png")
    assert (shot < 60).all(axis=2).sum() > 500
    # two rows' bars in the chart (plus the legend swatches): far more of each colour than a swatch alone
    assert has_colour(shot, LATENCY, min_pixels=1000) and has_colour(shot, MEMORY, min_pixels=1000)
