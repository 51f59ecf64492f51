"""zoo.measure.metrics against PaddleSeg's own ``paddleseg.utils.metrics`` (the oracle), and a hand-counted example."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.measure import metrics

NUM_CLASSES = 7


def _images(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random predictions and labels of several sizes: ignore regions, class 5 only ever predicted, class 6 only ever
    labelled, class 4 in neither (absent), and a few out-of-range predictions."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in [(17, 23), (40, 31), (8, 64), (33, 33)]:
        label = rng.integers(0, 4, (h, w)).astype(np.uint8)
        label[rng.random((h, w)) < 0.05] = 6
        label[: h // 4, : w // 3] = 255  # an ignore block, plus scattered ignored pixels
        label[rng.random((h, w)) < 0.1] = 255
        pred = np.where(rng.random((h, w)) < 0.6, label, rng.integers(0, 4, (h, w))).astype(np.int32)
        pred[pred == 255] = 2
        pred[rng.random((h, w)) < 0.03] = 5
        out.append((pred, label))
    return out


class _Paddle2Sum:
    def __init__(self, paddle):
        self._paddle = paddle

    def __getattr__(self, name):
        return getattr(self._paddle, name)

    def sum(self, x, *args, **kwargs):
        return self._paddle.sum(x, *args, **kwargs).reshape([1])


@pytest.mark.paddleseg
@pytest.mark.parametrize("absent", ["zero", "one"])
def test_metrics_match_paddleseg(absent: str, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("sklearn")
    ps_metrics = pytest.importorskip("paddleseg.utils.metrics")
    import paddle

    # PaddleSeg 2.8 was written for Paddle 2.x, whose paddle.sum returned shape [1]; Paddle 3 returns a 0-d tensor,
    # which its calculate_area cannot concat. Give the oracle its Paddle 2.x sum, nothing else changed.
    monkeypatch.setattr(ps_metrics, "paddle", _Paddle2Sum(paddle))

    areas = metrics.Areas(NUM_CLASSES)
    total = None
    for pred, label in _images():
        areas.update(pred, label)
        one = ps_metrics.calculate_area(paddle.to_tensor(pred[None, None].astype("int32")),
                                        paddle.to_tensor(label[None, None].astype("int64")), NUM_CLASSES)  # fmt: skip
        total = one if total is None else tuple(a + b for a, b in zip(total, one))  # as PaddleSeg's val.py sums them
    np.testing.assert_array_equal(areas.intersect, total[0].numpy())
    np.testing.assert_array_equal(areas.pred, total[1].numpy())
    np.testing.assert_array_equal(areas.label, total[2].numpy())
    # every id is a class here: the confusion matrix's diagonal, column and row sums are PaddleSeg's three areas
    np.testing.assert_array_equal(np.diag(areas.confusion), total[0].numpy())
    np.testing.assert_array_equal(areas.confusion.sum(axis=0), total[1].numpy())
    np.testing.assert_array_equal(areas.confusion.sum(axis=1), total[2].numpy())

    class_iou, miou = ps_metrics.mean_iou(*total)
    acc, class_precision, class_recall = ps_metrics.class_measurement(*total)
    kappa = ps_metrics.kappa(*total)
    class_dice, mdice = ps_metrics.dice(*total)
    got = areas.summary(absent=absent)
    if absent == "one":  # PaddleSeg >= 2.9: a class in neither prediction nor labels scores 1 (the oracle is 2.8)
        union = total[1].numpy() + total[2].numpy() - total[0].numpy()
        assert (union == 0).sum() == 1  # class 4
        class_iou = np.where(union == 0, 1.0, class_iou)
        miou = class_iou.mean()
    np.testing.assert_allclose(got["class_iou"], class_iou, rtol=0, atol=1e-9)
    assert got["miou"] == pytest.approx(miou, abs=1e-9)
    assert got["acc"] == pytest.approx(acc, abs=1e-9)
    np.testing.assert_allclose(got["class_acc"], class_precision, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["class_recall"], class_recall, rtol=0, atol=1e-9)
    assert got["kappa"] == pytest.approx(kappa, abs=1e-9)
    np.testing.assert_allclose(got["class_dice"], class_dice, rtol=0, atol=1e-9)
    assert got["dice"] == pytest.approx(mdice, abs=1e-9)
    assert got["images"] == 4 and got["absent_iou"] == metrics.ABSENT[absent]


def test_hand_counted_example():
    # label: 2 road, 1 sky, 1 ignored; pred: road, sky, sky, road(on the ignored pixel)
    label = np.array([[0, 0], [1, 255]], np.uint8)
    pred = np.array([[0, 1], [1, 0]], np.uint8)
    got = metrics.Areas(3)
    got.update(pred, label)
    assert got.intersect.tolist() == [1, 1, 0] and got.pred.tolist() == [1, 2, 0] and got.label.tolist() == [2, 1, 0]
    s = got.summary()
    assert s["class_iou"] == pytest.approx([1 / 2, 1 / 2, 0.0]) and s["miou"] == pytest.approx(1 / 3)
    assert s["acc"] == pytest.approx(2 / 3) and s["pixels"] == 3
    pe = (1 * 2 + 2 * 1) / 9
    assert s["kappa"] == pytest.approx((2 / 3 - pe) / (1 - pe))
    assert metrics.Areas(3).summary(absent="one")["class_iou"] == [1.0, 1.0, 1.0]


def test_hand_counted_confusion_matrix():
    # (label, pred) pixels: (0,0) (0,1) (2,2) / (1,1) ignored (2,0) / (1, 9: not a class) (3: not a class, 0)
    label = np.array([[0, 0, 2], [1, 255, 2], [1, 3, 0]], np.uint8)
    pred = np.array([[0, 1, 2], [1, 0, 0], [9, 0, 0]], np.int32)
    got = metrics.Areas(3)
    got.update(pred, label)
    assert got.confusion.tolist() == [[2, 1, 0],  # rows: ground truth, columns: prediction
                                      [0, 1, 0],
                                      [1, 0, 1]]  # fmt: skip
    cells, counts = metrics.confusion_of(pred, label, 3)
    assert dict(zip(cells.tolist(), counts.tolist())) == {0: 2, 1: 1, 4: 1, 6: 1, 8: 1}  # label * 3 + pred
    assert got.summary()["confusion"] == got.confusion.tolist()
    got.update(pred, label)  # a second image adds up
    assert got.confusion.sum() == 12 and got.confusion[0, 0] == 4


def test_confusion_matrix_equals_sklearn_and_gives_the_reported_ious():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    areas = metrics.Areas(NUM_CLASSES)
    want = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for pred, label in _images(seed=3):
        areas.update(pred, label)
        keep = label != 255
        want += sklearn_metrics.confusion_matrix(label[keep], pred[keep], labels=list(range(NUM_CLASSES)))
    np.testing.assert_array_equal(areas.confusion, want)
    cm = areas.confusion
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    iou = np.divide(np.diag(cm), union, out=np.zeros(NUM_CLASSES), where=union > 0)
    np.testing.assert_allclose(areas.summary()["class_iou"], iou, rtol=0, atol=1e-12)
