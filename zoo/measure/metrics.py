"""Segmentation metrics computed exactly as PaddleSeg's ``paddleseg.utils.metrics`` computes them, streaming.

:class:`Areas` accumulates three int64 vectors over a whole data set, one image at a time — per class, the pixels
predicted as the class (where the label is not ignored), the pixels labelled as the class, and their intersection —
and the confusion matrix behind them (rows: ground truth, columns: prediction; :func:`confusion_of`), so memory never
holds more than one image's maps. :func:`summarize` turns the areas into PaddleSeg's numbers:

* IoU_c = I_c / (P_c + L_c - I_c); mIoU = the mean over *all* classes;
* acc = ΣI / ΣP (pixel accuracy); class_acc_c = I_c / P_c (PaddleSeg's "class precision", what val.py prints as Acc);
* class_recall_c = I_c / L_c; Dice_c = 2 I_c / (P_c + L_c), dice = its mean;
* kappa = (po - pe) / (1 - pe), po = ΣI / ΣL, pe = Σ(P_c L_c) / (ΣL)².

A zero denominator gives 0 — except for IoU, where a class absent from both prediction and labels counts as 0 in
PaddleSeg up to 2.8 (the releases whose published mIoUs zoo's registry quotes; zoo's default, ``absent="zero"``) and
as 1 from 2.9 on (``absent="one"``). The convention used is part of every summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

IGNORE_INDEX = 255  # label value that is never scored (Cityscapes' trainId for "unlabelled")
ABSENT = {"zero": 0.0, "one": 1.0}  # IoU of a class absent from prediction and labels: PaddleSeg <= 2.8, >= 2.9
ABSENT_NOTE = {"zero": "absent classes count as IoU 0 (PaddleSeg <= 2.8)",
               "one": "absent classes count as IoU 1 (PaddleSeg >= 2.9)"}  # fmt: skip


def reduce_zero_label(label: np.ndarray, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """ADE20K's convention (PaddleSeg's ``ADE20K`` dataset, mmseg's ``reduce_zero_label``): label 0 ("other") becomes
    ``ignore_index`` and every other class id moves down by one; pixels already at ``ignore_index`` stay ignored."""
    label = np.asarray(label)
    out = label.astype(np.int64) - 1
    out[(label == 0) | (label == ignore_index)] = ignore_index
    return out


def areas_of(pred: np.ndarray, label: np.ndarray, num_classes: int,
             ignore_index: int = IGNORE_INDEX) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """One image's (intersect, pred, label) areas, int64 ``[num_classes]``: PaddleSeg's ``calculate_area``."""
    pred = np.asarray(pred).reshape(-1)
    label = np.asarray(label).reshape(-1)
    if pred.shape != label.shape:
        raise ValueError(f"prediction and label differ in size: {pred.size} vs {label.size} pixels")
    n = int(num_classes)
    scored = label != ignore_index
    p = pred[scored].astype(np.int64)
    lab = label.astype(np.int64)
    pred_area = np.bincount(p[(p >= 0) & (p < n)], minlength=n)[:n]
    label_area = np.bincount(lab[(lab >= 0) & (lab < n)], minlength=n)[:n]  # 255 is never a class < 256
    hit = p[(p == label[scored]) & (p >= 0) & (p < n)]
    intersect = np.bincount(hit, minlength=n)[:n]
    return intersect.astype(np.int64), pred_area.astype(np.int64), label_area.astype(np.int64)


def confusion_of(pred: np.ndarray, label: np.ndarray, num_classes: int,
                 ignore_index: int = IGNORE_INDEX) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One image's confusion matrix, sparse: (cells ``label * num_classes + pred``, their pixel counts), int64.

    Rows are the ground truth, columns the prediction; ignored pixels, and ids outside the classes on either side, are
    left out. Its diagonal is :func:`areas_of`'s intersect, its column and row sums its pred and label areas whenever
    every id is a class (what check_ids and --ignore-unknown-ids make of the labels; models predict their classes).
    """
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    label = np.asarray(label).reshape(-1).astype(np.int64)
    if pred.shape != label.shape:
        raise ValueError(f"prediction and label differ in size: {pred.size} vs {label.size} pixels")
    n = int(num_classes)
    keep = (label != ignore_index) & (label >= 0) & (label < n) & (pred >= 0) & (pred < n)
    counts = np.bincount(label[keep] * n + pred[keep], minlength=n * n)
    cells = np.flatnonzero(counts)
    return cells.astype(np.int64), counts[cells].astype(np.int64)


@dataclass
class Areas:
    """Per-class pixel counts accumulated over a data set (int64: a full Cityscapes val has ~1e9 pixels)."""

    num_classes: int
    ignore_index: int = IGNORE_INDEX
    intersect: np.ndarray = field(default=None)  # type: ignore[assignment]
    pred: np.ndarray = field(default=None)  # type: ignore[assignment]
    label: np.ndarray = field(default=None)  # type: ignore[assignment]
    images: int = 0
    confusion: np.ndarray = field(default=None)  # type: ignore[assignment]  # [label, pred] pixels, int64

    def __post_init__(self) -> None:
        for name in ("intersect", "pred", "label"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(self.num_classes, np.int64))
        if self.confusion is None:  # 150 classes: 22,500 int64s, 180 kB
            self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, pred: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Add one image; returns its own areas (for per-image scores)."""
        one = areas_of(pred, label, self.num_classes, self.ignore_index)
        self.add(one, confusion_of(pred, label, self.num_classes, self.ignore_index))
        return one

    def add(self, areas: tuple[np.ndarray, np.ndarray, np.ndarray], confusion: tuple[np.ndarray, np.ndarray]) -> None:
        """Add one image's areas and sparse confusion (:func:`areas_of`, :func:`confusion_of`)."""
        self.intersect += areas[0]
        self.pred += areas[1]
        self.label += areas[2]
        cells, counts = confusion
        np.add.at(self.confusion.reshape(-1), cells, counts)
        self.images += 1

    def summary(self, absent: str = "zero") -> dict[str, Any]:
        """:func:`summarize`'s metrics, the images counted and the raw confusion matrix (rows: ground truth)."""
        return summarize(self.intersect, self.pred, self.label, absent=absent) | {
            "images": self.images, "confusion": self.confusion.tolist()}  # fmt: skip


def _ratio(num: np.ndarray, den: np.ndarray, empty: float = 0.0) -> np.ndarray:
    out = np.full(num.shape, empty, np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def summarize(intersect: np.ndarray, pred: np.ndarray, label: np.ndarray, *, absent: str = "zero") -> dict[str, Any]:
    """PaddleSeg's metrics from accumulated areas (see the module docstring for the formulas)."""
    if absent not in ABSENT:
        raise ValueError(f"absent must be one of {', '.join(ABSENT)}, got {absent!r}")
    i, p, lab = (np.asarray(a, np.int64) for a in (intersect, pred, label))
    class_iou = _ratio(i, p + lab - i, ABSENT[absent])
    class_dice = _ratio(2 * i, p + lab)
    total_label = float(lab.sum())
    total_pred = float(p.sum())
    acc = float(i.sum()) / total_pred if total_pred else 0.0
    if total_label:
        po = float(i.sum()) / total_label
        pe = float(np.sum(p.astype(np.float64) * lab.astype(np.float64))) / (total_label * total_label)
        kappa = (po - pe) / (1 - pe) if pe != 1 else 0.0
    else:
        kappa = 0.0
    return {
        "miou": float(np.mean(class_iou)),
        "acc": acc,
        "kappa": float(kappa),
        "dice": float(np.mean(class_dice)),
        "class_iou": class_iou.tolist(),
        "class_acc": _ratio(i, p).tolist(),
        "class_recall": _ratio(i, lab).tolist(),
        "class_dice": class_dice.tolist(),
        "pixels": int(lab.sum()),
        "absent_iou": ABSENT[absent],
        "convention": ABSENT_NOTE[absent],
    }


def image_miou(intersect: np.ndarray, pred: np.ndarray, label: np.ndarray) -> float:
    """One image's mean IoU over the classes it or its prediction contains (to rank images; not a PaddleSeg number)."""
    union = pred + label - intersect
    present = union > 0
    return float(np.mean(intersect[present] / union[present])) if present.any() else 1.0
