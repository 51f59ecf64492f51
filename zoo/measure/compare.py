"""How far apart are two backends' outputs for the same input? Pure numpy; the first output is the reference.

A :class:`Comparison` knows what ran on each side (``names``, e.g. ``("paddle/fp32", "onnx/int8")``: backend and
precision, as ``zoo verify`` passes them); its JSON keys per side are those names, never fixed backend words.

* label maps (int32, or int64 as PaddleSeg release/2.4 exports wrote them) — :func:`compare_labels`: pixel agreement,
  flipped pixels, per-class IoU between the backends, which classes turned into which, and where the flips are;
* logits or probabilities (float ``[N, C, H, W]``) — :func:`compare_logits`: max/mean abs diff, cosine similarity,
  an elementwise allclose whose absolute tolerance scales with the output (``atol_rel × max|reference|``: a fixed atol
  passes anything when logits are ~1e-12, as a freshly initialised HRNet's are), and argmax flips split into ties
  (explained by differences within tolerance) and real flips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.measure.where import Where, locate

MAX_CONFUSIONS = 5  # worst (reference class → candidate class) pairs reported
SIDES = ("reference", "candidate")  # what the two outputs are called until told what ran (Comparison.names)


@dataclass(frozen=True)
class Tolerance:
    """What counts as agreement."""

    min_agreement: float = 0.9999  # labels: share of pixels that must get the same class
    rtol: float = 1e-3  # logits: relative tolerance, elementwise against |reference|
    atol_rel: float = 1e-4  # logits: absolute tolerance as a fraction of max|reference| over the image
    labels_only: bool = False  # reduced precision: logits pass on label agreement; their error is reported, not judged

    def as_dict(self) -> dict[str, Any]:
        return {"min_agreement": self.min_agreement, "rtol": self.rtol, "atol_rel": self.atol_rel,
                "labels_only": self.labels_only}  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """How one output (or all of them, for the overall result) of two backends compare; the first is the reference."""

    kind: str  # "labels", "logits", or "mismatch" (shapes or kinds differ: nothing else is comparable)
    passed: bool  # within the tolerance
    shape: tuple[int, ...]  # the reference's output shape
    dtypes: tuple[str, str]  # the reference's and the candidate's output dtypes
    pixels: int  # pixels compared (N × H × W)
    flipped: int  # pixels whose class (label, or argmax of logits) differs
    agreement: float  # 1 - flipped / pixels
    max_abs_diff: float | None  # labels: of the class ids; logits: of the values. 0.0: identical. None: non-finite
    class_iou: dict[str, float] = field(default_factory=dict)  # per class present in either output, by name
    class_pixels: dict[str, dict[str, int]] = field(default_factory=dict)  # {"reference", "candidate", "both"} per class
    confusions: tuple[dict[str, Any], ...] = ()  # worst {"reference": class, "candidate": class, "pixels": n}
    where: Where | None = None  # where they disagree (None for the overall result)
    problem: str | None = None  # why they could not be compared ("mismatch")
    # logits only
    values: int | None = None  # values compared (N × C × H × W)
    mean_abs_diff: float | None = None
    cosine: float | None = None  # cosine similarity of the flattened outputs (overall: the worst image)
    allclose: bool | None = None  # |candidate - reference| <= atol + rtol × |reference| everywhere
    rtol: float | None = None  # the relative tolerance used
    atol: float | None = None  # the absolute tolerance used: atol_rel × max|reference| (overall: the largest)
    max_abs_reference: float | None = None  # max|reference|
    out_of_tolerance: int | None = None  # values outside the allclose bound
    ties: int | None = None  # argmax flips the tolerance explains: the reference's margin between the classes is tiny
    real_flips: int | None = None  # argmax flips it does not explain
    nonfinite: tuple[int, int] | None = None  # NaN/inf values in the reference's, the candidate's output
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)  # [H, W] bool: pixels to mark
    names: tuple[str, str] = SIDES  # what ran on each side ("backend/precision"): the per-side keys of as_dict

    def _sides(self, a: Any, b: Any) -> dict[str, Any]:
        return dict(zip(self.names, (a, b)))

    def _named(self, rec: dict[str, Any]) -> dict[str, Any]:
        """A per-class record with generic side keys → the same record keyed by what ran."""
        return {self.names[SIDES.index(k)] if k in SIDES else k: v for k, v in rec.items()}

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind, "passed": self.passed, "shape": list(self.shape),
            "dtype": self._sides(*self.dtypes),
            "pixels": self.pixels, "flipped": self.flipped, "agreement": self.agreement,
            "max_abs_diff": _finite(self.max_abs_diff), "class_iou": dict(self.class_iou),
            "class_pixels": {k: self._named(v) for k, v in self.class_pixels.items()},
            "confusions": [self._named(c) for c in self.confusions],
            "where": self.where.as_dict() if self.where else None, "problem": self.problem,
        }  # fmt: skip
        if self.kind == "logits":
            data.update({
                "values": self.values, "mean_abs_diff": _finite(self.mean_abs_diff), "cosine": _finite(self.cosine),
                "allclose": self.allclose, "rtol": self.rtol, "atol": self.atol,
                "max_abs_reference": _finite(self.max_abs_reference),
                "out_of_tolerance": self.out_of_tolerance, "ties": self.ties, "real_flips": self.real_flips,
                "nonfinite": self._sides(*self.nonfinite) if self.nonfinite else None,
            })  # fmt: skip
        return data

    def summary(self, tolerance: Tolerance | None = None) -> str:
        """One line for humans: PASS/FAIL, how much and where."""
        verdict = "PASS" if self.passed else "FAIL"
        if self.kind == "mismatch":
            return f"{verdict}: {self.problem}"
        if self.kind == "logits":
            return f"{verdict}: {self._logits_text()}"
        tol = tolerance or Tolerance()
        if self.flipped == 0:
            return f"{verdict}: all {self.pixels} pixels agree (max_abs_diff 0.0)"
        text = f"{verdict}: {self.flipped} of {self.pixels} pixels ({_pct(self.flipped, self.pixels)}) differ"
        if self.where is not None:
            text += f", {self.where.describe()}"
        text += self._class_text()
        if self.passed:
            text += f"; within tolerance (agreement {self.agreement:.4%} >= {tol.min_agreement:.4%})"
        return text

    def _class_text(self) -> str:
        worst = sorted((iou, name) for name, iou in self.class_iou.items() if iou < 1.0)
        parts = [f"class {name} IoU {iou:.3f}" for iou, name in worst[:3]]
        if self.confusions:
            c = self.confusions[0]
            parts.append(f"mostly {c['reference']} -> {c['candidate']} ({c['pixels']} px)")
        return "; " + "; ".join(parts) if parts else ""

    def _logits_text(self) -> str:
        if self.nonfinite and (self.nonfinite[0] or self.nonfinite[1]):
            lead = f"non-finite values ({self.names[0]} {self.nonfinite[0]}, {self.names[1]} {self.nonfinite[1]}); "
        else:
            lead = ""
        bound = f"rtol {_g(self.rtol)}, atol {_g(self.atol)} (max|{self.names[0]}| {_g(self.max_abs_reference)})"
        if self.out_of_tolerance:
            head = f"{self.out_of_tolerance} of {self.values} values outside {bound}"
        else:
            head = f"all {self.values} values within {bound}"
        diffs = f"max_abs_diff {_g(self.max_abs_diff)}, mean {_g(self.mean_abs_diff)}, cosine {_g(self.cosine, 6)}"
        text = f"{lead}{head}; {diffs}"
        if self.where is not None and self.where.bbox is not None:
            text += f"; {self.where.describe()}"
        if self.flipped:
            text += f"; argmax flips {self.flipped} of {self.pixels} ({self.ties} ties, {self.real_flips} real)"
            text += self._class_text()
        return text


# ---- pure numpy comparisons ------------------------------------------------------------------------------------


def compare(reference: np.ndarray, candidate: np.ndarray, tolerance: Tolerance | None = None,
            labels: Sequence[str] | None = None, names: tuple[str, str] = SIDES) -> Comparison:  # fmt: skip
    """Compare two outputs of the same input: integer outputs as label maps, float ones as logits. ``names``: what
    produced each, e.g. ("paddle/fp32", "onnx/fp32")."""
    ref, cand = np.asarray(reference), np.asarray(candidate)
    dtypes = (str(ref.dtype), str(cand.dtype))
    r_int, c_int = np.issubdtype(ref.dtype, np.integer), np.issubdtype(cand.dtype, np.integer)
    problem = None
    if r_int != c_int:
        problem = f"{names[0]} gives {dtypes[0]} {'labels' if r_int else 'scores'}, {names[1]} {dtypes[1]}"
    elif _squeeze_shape(ref, r_int) != _squeeze_shape(cand, c_int):
        problem = f"output shapes differ: {names[0]} {list(ref.shape)}, {names[1]} {list(cand.shape)}"
    if problem:
        return Comparison("mismatch", False, tuple(ref.shape), dtypes, 0, 0, 0.0, None, problem=problem, names=names)
    if r_int:
        return compare_labels(ref, cand, tolerance, labels, names)
    return compare_logits(ref, cand, tolerance, labels, names)


def compare_labels(reference: np.ndarray, candidate: np.ndarray, tolerance: Tolerance | None = None,
                   labels: Sequence[str] | None = None, names: tuple[str, str] = SIDES) -> Comparison:  # fmt: skip
    """Compare two label maps (``[H, W]``, ``[N, H, W]`` or ``[N, 1, H, W]``; int32 and int64 mix freely)."""
    tol = tolerance or Tolerance()
    dtypes = (str(np.asarray(reference).dtype), str(np.asarray(candidate).dtype))
    a, b = _as_label_batch(reference), _as_label_batch(candidate)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {list(a.shape)} vs {list(b.shape)}")
    diff = a != b
    flipped, pixels = int(diff.sum()), int(a.size)
    agreement = 1.0 - flipped / pixels if pixels else 1.0
    max_abs = float(np.abs(a - b).max()) if pixels else 0.0
    iou, counts, confusions = _class_stats(a, b, labels)
    return Comparison(
        kind="labels", passed=agreement >= tol.min_agreement, shape=tuple(np.asarray(reference).shape),
        dtypes=dtypes, pixels=pixels, flipped=flipped, agreement=agreement, max_abs_diff=max_abs, class_iou=iou,
        class_pixels=counts, confusions=confusions, where=locate(diff), mask=diff.any(axis=0), names=names,
    )  # fmt: skip


def compare_logits(reference: np.ndarray, candidate: np.ndarray, tolerance: Tolerance | None = None,
                   labels: Sequence[str] | None = None, names: tuple[str, str] = SIDES) -> Comparison:  # fmt: skip
    """Compare two float outputs ``[N, C, H, W]`` (also ``[N, H, W]``/``[H, W]``: one channel)."""
    tol = tolerance or Tolerance()
    dtypes = (str(np.asarray(reference).dtype), str(np.asarray(candidate).dtype))
    a, b = _as_score_batch(reference), _as_score_batch(candidate)
    if a.shape != b.shape:
        raise ValueError(f"outputs differ in shape: {list(a.shape)} vs {list(b.shape)}")
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    both = finite_a & finite_b
    nonfinite = (int(a.size - finite_a.sum()), int(b.size - finite_b.sum()))
    max_ref = float(np.abs(a[finite_a]).max()) if finite_a.any() else 0.0
    atol = tol.atol_rel * max_ref
    # float64: the bound must not round away when logits are ~1e-12
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    bad = ~np.isclose(b64, a64, rtol=tol.rtol, atol=atol, equal_nan=True)
    mismatched_nonfinite = bool((~both & bad).any())
    if not both.all():  # the numbers below are over values finite in both; the rest is counted in `nonfinite`
        a64[~both] = 0.0
        b64[~both] = 0.0
    absdiff = np.abs(a64 - b64)
    max_abs = math.inf if mismatched_nonfinite else float(absdiff.max(initial=0.0))
    mean_abs = float(absdiff.sum() / max(int(both.sum()), 1))
    del absdiff
    na, nb = float(np.linalg.norm(a64.ravel())), float(np.linalg.norm(b64.ravel()))
    cosine = 1.0 if na == nb == 0.0 else (float(a64.ravel() @ b64.ravel()) / (na * nb) if na and nb else 0.0)
    out_of_tol = int(bad.sum())

    # argmax flips; a flip is a tie when the reference's margin between the two classes is within what the tolerance allows
    arg_a, arg_b = np.argmax(a64, axis=1), np.argmax(b64, axis=1)
    flips = arg_a != arg_b
    top_a = np.take_along_axis(a64, arg_a[:, None], axis=1)[:, 0]
    at_b = np.take_along_axis(a64, arg_b[:, None], axis=1)[:, 0]
    allowed = 2 * atol + tol.rtol * (np.abs(top_a) + np.abs(at_b))
    ties_mask = flips & ((top_a - at_b) <= allowed)
    ties, flipped = int(ties_mask.sum()), int(flips.sum())
    pixels = int(flips.size)
    iou, counts, confusions = _class_stats(arg_a, arg_b, labels)
    allclose = out_of_tol == 0
    mask = bad.any(axis=1) | (flips & ~ties_mask)
    passed = (1.0 - flipped / pixels if pixels else 1.0) >= tol.min_agreement if tol.labels_only else allclose
    return Comparison(
        kind="logits", passed=passed, shape=tuple(np.asarray(reference).shape), dtypes=dtypes, pixels=pixels,
        flipped=flipped, agreement=1.0 - flipped / pixels if pixels else 1.0, max_abs_diff=max_abs,
        class_iou=iou, class_pixels=counts, confusions=confusions, where=locate(mask), values=int(a.size),
        mean_abs_diff=mean_abs, cosine=cosine, allclose=allclose, atol=atol, max_abs_reference=max_ref,
        out_of_tolerance=out_of_tol, ties=ties, real_flips=flipped - ties, nonfinite=nonfinite, rtol=tol.rtol,
        mask=mask.any(axis=0), names=names,
    )  # fmt: skip


def combine(comparisons: Sequence[Comparison], tolerance: Tolerance | None = None) -> Comparison:
    """The overall result of several images: totals, worst values, IoU from summed pixel counts; passed if all did."""
    tol = tolerance or Tolerance()
    if not comparisons:
        raise ValueError("nothing to combine")
    kinds = {c.kind for c in comparisons}
    first = comparisons[0]
    passed = all(c.passed for c in comparisons)
    if kinds != {first.kind} or first.kind == "mismatch":
        problems = "; ".join(sorted({c.problem or c.kind for c in comparisons if c.kind == "mismatch"}))
        return Comparison("mismatch", False, first.shape, first.dtypes, 0, 0, 0.0, None, problem=problems or "mixed",
                          names=first.names)  # fmt: skip
    pixels = sum(c.pixels for c in comparisons)
    flipped = sum(c.flipped for c in comparisons)
    counts: dict[str, dict[str, int]] = {}
    for c in comparisons:
        for name, rec in c.class_pixels.items():
            into = counts.setdefault(name, {"reference": 0, "candidate": 0, "both": 0})
            for k in into:
                into[k] += rec[k]
    iou = {name: _iou(rec) for name, rec in counts.items()}
    pairs: dict[tuple[str, str], int] = {}
    for c in comparisons:
        for conf in c.confusions:
            pair = (conf["reference"], conf["candidate"])
            pairs[pair] = pairs.get(pair, 0) + conf["pixels"]
    confusions = tuple(
        {"reference": r, "candidate": c, "pixels": n} for (r, c), n in sorted(pairs.items(), key=lambda kv: -kv[1])
    )[:MAX_CONFUSIONS]
    diffs = [c.max_abs_diff for c in comparisons]
    max_abs = None if any(d is None for d in diffs) else max(diffs)  # type: ignore[type-var]
    common: dict[str, Any] = dict(
        kind=first.kind, passed=passed, shape=first.shape, dtypes=first.dtypes, pixels=pixels, flipped=flipped,
        agreement=1.0 - flipped / pixels if pixels else 1.0, max_abs_diff=max_abs, class_iou=iou,
        class_pixels=counts, confusions=confusions, names=first.names,
    )  # fmt: skip
    if first.kind == "labels":
        return Comparison(**common)
    values = [c.values or 0 for c in comparisons]
    return Comparison(
        **common,
        values=sum(values),
        mean_abs_diff=sum((c.mean_abs_diff or 0.0) * n for c, n in zip(comparisons, values)) / max(sum(values), 1),
        cosine=min(c.cosine for c in comparisons if c.cosine is not None),
        allclose=all(c.allclose for c in comparisons), atol=max(c.atol or 0.0 for c in comparisons),
        max_abs_reference=max(c.max_abs_reference or 0.0 for c in comparisons),
        out_of_tolerance=sum(c.out_of_tolerance or 0 for c in comparisons),
        ties=sum(c.ties or 0 for c in comparisons), real_flips=sum(c.real_flips or 0 for c in comparisons),
        nonfinite=(sum(c.nonfinite[0] for c in comparisons if c.nonfinite),
                   sum(c.nonfinite[1] for c in comparisons if c.nonfinite)),
        rtol=tol.rtol,
    )  # fmt: skip


def _squeeze_shape(x: np.ndarray, is_labels: bool) -> tuple[int, ...]:
    return _as_label_batch(x).shape if is_labels else _as_score_batch(x).shape


def _as_label_batch(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"label maps must be integers, got {x.dtype}")
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"label maps are [H, W], [N, H, W] or [N, 1, H, W]; got shape {list(x.shape)}")
    return x.astype(np.int64, copy=False)


def _as_score_batch(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"logits are [N, C, H, W]; got shape {list(x.shape)}")
    return x


def _class_stats(a: np.ndarray, b: np.ndarray, labels: Sequence[str] | None):
    """Per-class IoU and pixel counts, and the worst confusions, via a confusion matrix over the ids present."""
    ids, inverse = np.unique(np.concatenate([a.ravel(), b.ravel()]), return_inverse=True)
    k = len(ids)
    ia, ib = inverse[: a.size], inverse[a.size :]
    confusion = np.bincount(ia * k + ib, minlength=k * k).reshape(k, k)
    names = [_class_name(int(i), labels) for i in ids]
    counts = {
        names[i]: {"reference": int(confusion[i].sum()), "candidate": int(confusion[:, i].sum()),
                   "both": int(confusion[i, i])}
        for i in range(k)
    }
    iou = {name: _iou(rec) for name, rec in counts.items()}
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    worst = np.argsort(-off, axis=None, kind="stable")[:MAX_CONFUSIONS]
    confusions = tuple(
        {"reference": names[f // k], "candidate": names[f % k], "pixels": int(off.flat[f])}
        for f in map(int, worst)
        if off.flat[f]
    )
    return iou, counts, confusions


def _iou(rec: dict[str, int]) -> float:
    union = rec["reference"] + rec["candidate"] - rec["both"]
    return round(rec["both"] / union, 6) if union else 1.0


def _class_name(class_id: int, labels: Sequence[str] | None) -> str:
    if labels is not None and 0 <= class_id < len(labels):
        return labels[class_id]
    return f"class_{class_id}"


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _pct(part: int, whole: int) -> str:
    share = 100.0 * part / whole if whole else 0.0
    return f"{share:.2f}%" if share >= 0.01 or share == 0 else f"{share:.4f}%"


def _g(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else (f"{x:.{digits}g}" if math.isfinite(x) else str(x))
