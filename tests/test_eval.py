"""zoo eval end to end: labelled synthetic data in all three layouts, real exported models on both backends, the
expected numbers (and the reported confusion matrix and its picture) from a bare onnxruntime session and a confusion
matrix written here; bad labels; Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.discovered import BUILTIN_ARCHITECTURES
from zoo import synthetic
from zoo.measure import datasets, evaluation
from zoo.runners import runtime
from zoo.errors import DatasetError

N, H, W = 4, 64, 128
NUM_CLASSES = 19
FAST = "bisenet"  # the quickest network to export: the one not marked slow
ARCHS = [a if a == FAST else pytest.param(a, marks=pytest.mark.slow) for a in BUILTIN_ARCHITECTURES]


def _bare_predictions(onnx: Path, rgbs: list[np.ndarray]) -> list[np.ndarray]:
    """Class ids from a plain onnxruntime session, preprocessing written out: (x / 255 - 0.5) / 0.5."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out = []
    for rgb in rgbs:
        x = ((rgb.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
        ids = session.run(None, {name: np.ascontiguousarray(x)})[0]
        out.append(ids.reshape(rgb.shape[:2]).astype(np.int64))
    return out


def _pseudo_labelled(root: Path, onnx: Path, layout: str) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    """Synthetic scenes labelled with the model's own bare-session predictions, then partly relabelled (so IoU < 1)
    and partly ignored: a random-weight network's masks then score something other than 0 and 1."""
    path = synthetic.write_labelled_dataset(root, N, H, W, layout=layout)
    ds = datasets.open_dataset(path)
    rgbs = [cv2.imread(str(s.image))[:, :, ::-1] for s in ds.samples]
    preds = _bare_predictions(onnx, rgbs)
    labels = []
    for sample, pred in zip(ds.samples, preds):
        i = int(re.search(r"scene(\d+)", sample.image.name).group(1))  # the same spoiling whatever the layout's order
        label = pred.copy()
        label[: 8 + 4 * i, :] = (label[: 8 + 4 * i, :] + 1 + i) % NUM_CLASSES  # wrong on a band
        label[-10:, : 20 + 8 * i] = 255  # ignored
        label[30:34, 40:60] = 13  # a "car" the model may not see
        cv2.imwrite(str(sample.label), label.astype(np.uint8))
        labels.append(label)
    return path, preds, labels


def _expected(preds: list[np.ndarray], labels: list[np.ndarray]) -> dict:
    """mIoU, accuracy and per-class IoU from a confusion matrix (rows: label, columns: prediction)."""
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for pred, label in zip(preds, labels):
        keep = label != 255
        cm += np.bincount(label[keep] * NUM_CLASSES + pred[keep], minlength=NUM_CLASSES**2).reshape(cm.shape)
    inter, on_pred, on_label = np.diag(cm), cm.sum(0), cm.sum(1)
    union = on_pred + on_label - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return {"miou": iou.mean(), "acc": inter.sum() / cm.sum(), "class_iou": iou, "pixels": int(cm.sum()),
            "confusion": cm}


@pytest.mark.parametrize("arch", ARCHS)
def test_eval_cli_three_layouts_both_backends(models, tmp_path, arch):
    onnx = models.install_converted(arch)
    results, expectations = {}, {}
    for layout in synthetic.LAYOUTS:
        path, preds, labels = _pseudo_labelled(tmp_path / layout, onnx, layout)
        proc = run_zoo("eval", arch, "--data", str(path), "--backend", "onnx,paddle", "--json", check=True)
        results[layout] = json.loads(proc.stdout)
        expectations[layout] = _expected(preds, labels)
    for layout, got in results.items():
        expected = expectations[layout]
        assert 0.01 < expected["miou"] < 0.95 and 0.3 < expected["acc"] < 0.99  # the check is not trivially 0 or 1
        assert got["images"] == N and got["layout"] == layout and got["skipped"] == 0
        onnx_ = got["backends"]["onnx"]
        assert onnx_["pixels"] == expected["pixels"]
        assert onnx_["miou"] == pytest.approx(expected["miou"], abs=1e-12)
        assert onnx_["acc"] == pytest.approx(expected["acc"], abs=1e-12)
        np.testing.assert_allclose(onnx_["class_iou"], expected["class_iou"], rtol=0, atol=1e-12)
        assert onnx_["confusion"] == expected["confusion"].tolist()  # rows: ground truth, columns: prediction
        for backend in got["backends"].values():  # each backend's own matrix gives its own reported IoUs
            cm = np.asarray(backend["confusion"])
            union = cm.sum(0) + cm.sum(1) - np.diag(cm)
            iou = np.divide(np.diag(cm), union, out=np.zeros(len(cm)), where=union > 0)
            np.testing.assert_allclose(backend["class_iou"], iou, rtol=0, atol=1e-12)
        for key in ("kappa", "dice", "class_acc", "images", "pixels"):
            assert key in onnx_
        paddle_ = got["backends"]["paddle"]  # Paddle Inference: the same masks up to near-tied scores
        assert paddle_["miou"] == pytest.approx(expected["miou"], abs=0.01)
        assert paddle_["acc"] == pytest.approx(expected["acc"], abs=0.01)
    # the same images in three layouts are the same numbers
    scores = [{k: {m: v for m, v in b.items() if m != "images_per_second"} for k, b in r["backends"].items()}
              for r in results.values()]  # fmt: skip
    differ = {(k, m) for s in scores[1:] for k in s for m in s[k] if s[k][m] != scores[0][k][m]}
    assert not differ


def test_eval_table_report_and_registry_reference(models, tmp_path):
    onnx = models.install_converted("bisenet")
    path, preds, labels = _pseudo_labelled(tmp_path / "cs", onnx, "cityscapes")
    proc = run_zoo("eval", "bisenet", "--data", str(path), "--report", str(tmp_path / "rep"), check=True)
    expected = _expected(preds, labels)
    lines = proc.stdout.splitlines()
    assert "absent classes count as IoU 0 (PaddleSeg <= 2.8)" in lines[0]
    row = {ln.split("  ")[0]: ln.split()[-1] for ln in lines[1:]}
    assert row["mIoU"] == f"{expected['miou'] * 100:.2f}"
    assert row["mIoU - registry (73.19)"] == f"{expected['miou'] * 100 - 73.19:+.2f}"  # registry.toml: bisenet 73.19
    assert row["IoU road"] == f"{expected['class_iou'][0] * 100:.2f}"
    report = json.loads((tmp_path / "rep" / "eval.json").read_text())
    assert report["backends"]["onnx"]["miou"] == pytest.approx(expected["miou"], abs=1e-12)
    assert report["reference_miou"] == 73.19
    assert report["backends"]["onnx"]["confusion"] == expected["confusion"].tolist()
    chart = cv2.imread(str(tmp_path / "rep" / "class_iou.png"))
    assert chart is not None and chart.shape[1] == 900
    _check_confusion_picture(tmp_path / "rep" / "confusion_onnx.png", expected["confusion"])
    worst = sorted((tmp_path / "rep" / "worst").iterdir())
    assert len(worst) == evaluation.WORST
    panel = cv2.imread(str(worst[0]))
    assert panel.shape[:2] == (40 + H, 4 * W)  # a caption band over image | prediction | ground truth | errors


def _check_confusion_picture(png: Path, cm: np.ndarray) -> None:
    """The picture shows ``cm`` (the test's own count) row-normalised: a square grid of one cell per class found in
    the labels or predictions, located by its outlined diagonal; each cell's colour is its share of its row."""
    from zoo.measure.eval_report import DIAGONAL, FULL, NO_TRUTH

    picture = cv2.imread(str(png))
    assert picture is not None, png
    rgb = picture[:, :, ::-1].astype(np.int64)
    shown = np.flatnonzero(cm.sum(0) + cm.sum(1))
    ys, xs = np.nonzero((rgb == DIAGONAL).all(axis=2))
    side = xs.max() - xs.min() + 1
    assert side == ys.max() - ys.min() + 1 and side % len(shown) == 0  # a square of k x k cells
    cell = side // len(shown)
    assert 10 <= cell <= 40 and picture.shape[0] > side and picture.shape[1] > side
    sub = cm[np.ix_(shown, shown)]
    for r in range(len(shown)):
        for c in range(len(shown)):
            y, x = ys.min() + r * cell + 4, xs.min() + c * cell + 4  # inside the outline, clear of the number
            total = sub[r].sum()
            want = np.asarray(NO_TRUTH) if total == 0 else 255 + (np.asarray(FULL) - 255) * sub[r, c] / total
            assert np.abs(rgb[y, x] - want).max() <= 1, (r, c, rgb[y, x], want)


def test_confusion_picture_of_150_classes_stays_legible(tmp_path):
    """ADE20K's 150 classes: 10-pixel cells (a 1500-pixel grid), only the classes in the labels or predictions."""
    from zoo.measure import eval_report

    rng = np.random.default_rng(0)
    cm = rng.integers(0, 40, (150, 150)) * (rng.random((150, 150)) < 0.05) + np.diag(rng.integers(50, 900, 150))
    cm[7, :] = cm[:, 7] = 0  # in neither: left out
    cm[9, :] = 0  # predicted only: a grey row, its column kept
    labels = tuple(f"ade class {i}" for i in range(150))
    shown = eval_report.shown_classes(cm)
    assert 7 not in shown and 9 in shown and len(shown) == 149
    picture = eval_report.confusion_chart(labels, cm, shown, "onnx/int8")
    assert max(picture.shape[:2]) < 1800
    cv2.imwrite(str(tmp_path / "c.png"), picture[:, :, ::-1])
    _check_confusion_picture(tmp_path / "c.png", cm)
    assert eval_report.confusion_name("onnx/int8") == "confusion_onnx-int8.png"


def test_absent_one_is_an_option_and_reported(models, tmp_path):
    onnx = models.install_converted("bisenet")
    path, _, _ = _pseudo_labelled(tmp_path / "fo", onnx, "folders")
    zero = json.loads(run_zoo("eval", "bisenet", "--data", str(path), "--json", check=True).stdout)
    one = json.loads(run_zoo("eval", "bisenet", "--data", str(path), "--json", "--absent-one", check=True).stdout)
    z, o = zero["backends"]["onnx"], one["backends"]["onnx"]
    absent = [i for i, (a, b) in enumerate(zip(z["class_iou"], o["class_iou"])) if a != b]
    assert absent and all(z["class_iou"][i] == 0 and o["class_iou"][i] == 1 for i in absent)
    assert o["miou"] == pytest.approx(z["miou"] + len(absent) / NUM_CLASSES, abs=1e-12)
    assert zero["absent_iou"] == 0.0 and one["absent_iou"] == 1.0 and "2.9" in one["convention"]


def test_slide_mode_cli_refuses_an_argmax_model(models, tmp_path):
    models.install_converted("bisenet")
    path = synthetic.write_labelled_dataset(tmp_path / "fo", 1, H, W, layout="folders")
    proc = run_zoo("eval", "bisenet", "--data", str(path), "--mode", "slide", "--crop", "32x64", "--stride", "32x32")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("zoo: error: ")
    assert "--output-op none" in proc.stderr
    bad = run_zoo("eval", "bisenet", "--data", str(path), "--mode", "slide", "--crop", "32by64", "--stride", "8x8")
    assert bad.returncode == 2 and "HxW" in bad.stderr


# ---- bad data ---------------------------------------------------------------------------------------------------------


def _spoil(path: Path) -> dict[str, Path]:
    """Three bad labels: one missing, one of the wrong size, one that is not an image."""
    ds = datasets.open_dataset(path)
    missing, small, garbage = (s.label for s in ds.samples[:3])
    missing.unlink()
    cv2.imwrite(str(small), np.zeros((H // 2, W), np.uint8))
    garbage.write_bytes(b"not a png at all")
    return {"missing": missing, "small": small, "garbage": garbage}


@pytest.mark.parametrize("layout", synthetic.LAYOUTS)
def test_bad_labels_are_one_line_errors_naming_the_file(models, tmp_path, layout):
    models.install_converted("bisenet")
    path = synthetic.write_labelled_dataset(tmp_path / layout, 6, H, W, layout=layout)
    bad = _spoil(path)
    proc = run_zoo("eval", "bisenet", "--data", str(path))
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("zoo: error: ") and str(bad["missing"]) in last and "--skip-bad" in last
    assert "Traceback" not in proc.stderr
    proc = run_zoo("eval", "bisenet", "--data", str(path), "--skip-bad", "--json", check=True)
    got = json.loads(proc.stdout)
    assert got["images"] == 3 and got["skipped"] == 3 and got["backends"]["onnx"]["images"] == 3
    joined = "\n".join(got["skipped_samples"])
    assert all(str(p) in joined for p in bad.values())


def test_each_bad_label_error_alone(tmp_path):
    path = synthetic.write_labelled_dataset(tmp_path / "fo", 3, H, W, layout="folders")
    bad = _spoil(path)
    ds = datasets.open_dataset(path)
    problems = [datasets.check(s) for s in ds.samples]
    assert "missing" in problems[0] and str(bad["missing"]) in problems[0]
    assert f"is {H // 2}x{W} (HxW) but its image" in problems[1] and str(bad["small"]) in problems[1]
    assert "not a readable PNG" in problems[2] and str(bad["garbage"]) in problems[2]
    with pytest.raises(DatasetError, match="3 channels"):  # a colour label decoded during the run
        colour = tmp_path / "c.png"
        cv2.imwrite(str(colour), np.zeros((H, W, 3), np.uint8))
        datasets.read_label(colour, (H, W))
    with pytest.raises(DatasetError, match="no data set zoo knows"):
        datasets.open_dataset(tmp_path)


def test_paletted_label_reads_its_indices(tmp_path):
    from zoo.engines.segment import png_bytes

    ids = (np.arange(H * W).reshape(H, W) % 19).astype(np.uint8)
    palette = np.asarray(runtime.Architecture("x", "x").colors(256), np.uint8)[:256]
    (tmp_path / "p.png").write_bytes(png_bytes(ids, palette))
    np.testing.assert_array_equal(datasets.read_label(tmp_path / "p.png", (H, W)), ids)


def test_synthetic_labels_mark_the_drawn_regions():
    rgb, lab = synthetic.labelled_street_scene(128, 256, seed=1)
    np.testing.assert_array_equal(rgb, synthetic.street_scene(128, 256, seed=1))  # the picture is unchanged
    assert set(np.unique(lab)) == {0, 1, 2, 10, 13}
    car = lab == 13
    assert np.abs(rgb[car].astype(int).mean(0) - (180, 40, 40)).max() < 3  # the red box (noise is ±8, mean ~0)
    assert lab[0].tolist() == [10] * 256 or (lab[0] == 2).any()  # sky on top unless a tall block reaches it
    lane = synthetic.labelled_street_scene(128, 256, seed=1, lane_id=19)[1]
    marks = lane == 19
    assert marks.any() and (lab[marks] == 0).all()  # lane marks are road by default
    assert (rgb[marks].mean(0) > 220).all()  # and they are the white dashes


# ---- Ctrl-C -----------------------------------------------------------------------------------------------------------


def test_ctrl_c_prints_the_partial_result(models, tmp_path):
    models.install_converted("bisenet")
    count = 400
    path = synthetic.write_labelled_dataset(tmp_path / "fo", count, 128, 256, layout="folders")
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "eval", "bisenet", "--data", str(path), "--json",
                             "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()
    while line and not line.startswith("evaluating"):
        line = proc.stderr.readline()
    assert line.startswith("evaluating"), "zoo eval never started"
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    got = json.loads(out)
    assert got["interrupted"] is True and 0 < got["images"] < count
    assert got["backends"]["onnx"]["images"] == got["images"]
    assert "interrupted after" in err


def test_python_api_matches_the_cli(models, tmp_path):
    import zoo

    onnx = models.install_converted("bisenet")
    path, preds, labels = _pseudo_labelled(tmp_path / "ls", onnx, "list")
    result = zoo.evaluate("bisenet", path, limit=3)
    expected = _expected(preds[:3], labels[:3])
    assert "evaluate" in zoo.__all__ and result.images == 3 and not result.interrupted
    assert result.backends["onnx"]["miou"] == pytest.approx(expected["miou"], abs=1e-12)
    assert result.reference_miou is None  # not Cityscapes val: no registry reference
    model = runtime.load("bisenet")
    again = evaluation.run(model, datasets.open_dataset(path), limit=3)
    np.testing.assert_allclose(again.backends["onnx"]["class_iou"], expected["class_iou"], rtol=0, atol=1e-12)


def test_progress_bar_with_images_per_second_on_a_terminal_only(models, tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    models.install_converted("bisenet")
    path = synthetic.write_labelled_dataset(tmp_path / "fo", 3, H, W, layout="folders")
    args = [sys.executable, "-m", "zoo", "eval", "bisenet", "--data", str(path), "--json"]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    proc.communicate(timeout=120)
    os.close(master)
    assert proc.returncode == 0
    assert "3/3" in seen.decode(errors="replace") and "img/s" in seen.decode(errors="replace")
    piped = run_zoo("eval", "bisenet", "--data", str(path), "--json", check=True)
    assert "img/s" not in piped.stderr  # not a terminal: no bar
