"""How far apart are two backends' outputs for the same input? Pure numpy; the first output is the reference.

The fields say "paddle" for the reference and "onnx" for the candidate (the default pair of ``zoo verify``); with
``zoo verify --backend A,B`` they hold A's and B's outputs.

* label maps (int32, or int64 as PaddleSeg release/2.4 exports wrote them) — :func:`compare_labels`: pixel agreement,
  flipped pixels, per-class IoU between the backends, which classes turned into which, and where the flips are;
* logits or probabilities (float ``[N, C, H, W]``) — :func:`compare_logits`: max/mean abs diff, cosine similarity,
  an elementwise allclose whose absolute tolerance scales with the output (``atol_rel × max|paddle|``: a fixed atol
  passes anything when logits are ~1e-12, as a freshly initialised HRNet's are), and argmax flips split into ties
  (explained by differences within tolerance) and real flips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GRID = (8, 8)  # rows, cols of the coarse "where" grid
MAX_REGIONS = 3  # worst grid cells reported
MAX_CONFUSIONS = 5  # worst (paddle class → onnx class) pairs reported


@dataclass(frozen=True)
class Tolerance:
    """What counts as agreement."""

    min_agreement: float = 0.9999  # labels: share of pixels that must get the same class
    rtol: float = 1e-3  # logits: relative tolerance, elementwise against |paddle|
    atol_rel: float = 1e-4  # logits: absolute tolerance as a fraction of max|paddle| over the image
    labels_only: bool = False  # reduced precision: logits pass on label agreement; their error is reported, not judged

    def as_dict(self) -> dict[str, Any]:
        return {"min_agreement": self.min_agreement, "rtol": self.rtol, "atol_rel": self.atol_rel,
                "labels_only": self.labels_only}  # fmt: skip


@dataclass(frozen=True)
class Where:
    """Where two outputs disagree, in pixel coordinates of the network input (x: column, y: row, inclusive)."""

    size: tuple[int, int]  # height, width of the map located in
    bbox: tuple[int, int, int, int] | None  # x0, x1, y0, y1 of all disagreeing pixels; None when they agree
    cell: tuple[int, int]  # height, width of one grid cell in pixels
    grid: np.ndarray  # [rows, cols] disagreeing pixels per cell
    regions: tuple[dict[str, Any], ...]  # the worst cells, most disagreeing first

    def as_dict(self) -> dict[str, Any]:
        bbox = None if self.bbox is None else {"x": list(self.bbox[:2]), "y": list(self.bbox[2:])}
        rows, cols = self.grid.shape
        return {
            "size": list(self.size),
            "bbox": bbox,
            "grid": {"rows": rows, "cols": cols, "cell": list(self.cell), "counts": self.grid.tolist()},
            "regions": [dict(r) for r in self.regions],
        }

    def describe(self) -> str:
        if self.bbox is None:
            return "nowhere"
        x0, x1, y0, y1 = self.bbox
        hit, cells = int(np.count_nonzero(self.grid)), int(self.grid.size)
        text = f"in x {x0}..{x1}, y {y0}..{y1} ({hit} of {cells} grid cells"
        if self.regions and hit < cells:
            r = self.regions[0]
            text += f"; most in x {r['x'][0]}..{r['x'][1]}, y {r['y'][0]}..{r['y'][1]}: {r['pixels']} px"
        return text + ")"


@dataclass(frozen=True)
class Comparison:
    """How one output (or all of them, for the overall result) of Paddle and ONNX compare. Paddle is the reference."""

    kind: str  # "labels", "logits", or "mismatch" (shapes or kinds differ: nothing else is comparable)
    passed: bool  # within the tolerance
    shape: tuple[int, ...]  # Paddle's output shape
    dtypes: tuple[str, str]  # Paddle's and ONNX's output dtypes
    pixels: int  # pixels compared (N × H × W)
    flipped: int  # pixels whose class (label, or argmax of logits) differs
    agreement: float  # 1 - flipped / pixels
    max_abs_diff: float | None  # labels: of the class ids; logits: of the values. 0.0: identical. None: non-finite
    class_iou: dict[str, float] = field(default_factory=dict)  # per class present in either output, by name
    class_pixels: dict[str, dict[str, int]] = field(default_factory=dict)  # {"paddle", "onnx", "both"} per class
    confusions: tuple[dict[str, Any], ...] = ()  # worst {"paddle": class, "onnx": class, "pixels": n}
    where: Where | None = None  # where they disagree (None for the overall result)
    problem: str | None = None  # why they could not be compared ("mismatch")
    # logits only
    values: int | None = None  # values compared (N × C × H × W)
    mean_abs_diff: float | None = None
    cosine: float | None = None  # cosine similarity of the flattened outputs (overall: the worst image)
    allclose: bool | None = None  # |onnx - paddle| <= atol + rtol × |paddle| everywhere
    rtol: float | None = None  # the relative tolerance used
    atol: float | None = None  # the absolute tolerance used: atol_rel × max|paddle| (overall: the largest)
    max_abs_reference: float | None = None  # max|paddle|
    out_of_tolerance: int | None = None  # values outside the allclose bound
    ties: int | None = None  # argmax flips the tolerance explains: Paddle's margin between the two classes is tiny
    real_flips: int | None = None  # argmax flips it does not explain
    nonfinite: tuple[int, int] | None = None  # NaN/inf values in Paddle's, ONNX's output
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)  # [H, W] bool: pixels to mark

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind, "passed": self.passed, "shape": list(self.shape),
            "dtype": {"paddle": self.dtypes[0], "onnx": self.dtypes[1]},
            "pixels": self.pixels, "flipped": self.flipped, "agreement": self.agreement,
            "max_abs_diff": _finite(self.max_abs_diff), "class_iou": dict(self.class_iou),
            "class_pixels": {k: dict(v) for k, v in self.class_pixels.items()},
            "confusions": [dict(c) for c in self.confusions],
            "where": self.where.as_dict() if self.where else None, "problem": self.problem,
        }  # fmt: skip
        if self.kind == "logits":
            data.update({
                "values": self.values, "mean_abs_diff": _finite(self.mean_abs_diff), "cosine": _finite(self.cosine),
                "allclose": self.allclose, "rtol": self.rtol, "atol": self.atol,
                "max_abs_reference": _finite(self.max_abs_reference),
                "out_of_tolerance": self.out_of_tolerance, "ties": self.ties, "real_flips": self.real_flips,
                "nonfinite": {"paddle": self.nonfinite[0], "onnx": self.nonfinite[1]} if self.nonfinite else None,
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
            parts.append(f"mostly {c['paddle']} -> {c['onnx']} ({c['pixels']} px)")
        return "; " + "; ".join(parts) if parts else ""

    def _logits_text(self) -> str:
        if self.nonfinite and (self.nonfinite[0] or self.nonfinite[1]):
            lead = f"non-finite values (paddle {self.nonfinite[0]}, onnx {self.nonfinite[1]}); "
        else:
            lead = ""
        bound = f"rtol {_g(self.rtol)}, atol {_g(self.atol)} (max|paddle| {_g(self.max_abs_reference)})"
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


def compare(paddle: np.ndarray, onnx: np.ndarray, tolerance: Tolerance | None = None,
            labels: Sequence[str] | None = None) -> Comparison:  # fmt: skip
    """Compare two outputs of the same input: integer outputs as label maps, float ones as logits."""
    paddle, onnx = np.asarray(paddle), np.asarray(onnx)
    dtypes = (str(paddle.dtype), str(onnx.dtype))
    p_int, o_int = np.issubdtype(paddle.dtype, np.integer), np.issubdtype(onnx.dtype, np.integer)
    problem = None
    if p_int != o_int:
        problem = f"Paddle gives {dtypes[0]} {'labels' if p_int else 'scores'}, ONNX {dtypes[1]}"
    elif _squeeze_shape(paddle, p_int) != _squeeze_shape(onnx, o_int):
        problem = f"output shapes differ: Paddle {list(paddle.shape)}, ONNX {list(onnx.shape)}"
    if problem:
        return Comparison("mismatch", False, tuple(paddle.shape), dtypes, 0, 0, 0.0, None, problem=problem)
    if p_int:
        return compare_labels(paddle, onnx, tolerance, labels)
    return compare_logits(paddle, onnx, tolerance, labels)


def compare_labels(paddle: np.ndarray, onnx: np.ndarray, tolerance: Tolerance | None = None,
                   labels: Sequence[str] | None = None) -> Comparison:  # fmt: skip
    """Compare two label maps (``[H, W]``, ``[N, H, W]`` or ``[N, 1, H, W]``; int32 and int64 mix freely)."""
    tol = tolerance or Tolerance()
    dtypes = (str(np.asarray(paddle).dtype), str(np.asarray(onnx).dtype))
    a, b = _as_label_batch(paddle), _as_label_batch(onnx)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {list(a.shape)} vs {list(b.shape)}")
    diff = a != b
    flipped, pixels = int(diff.sum()), int(a.size)
    agreement = 1.0 - flipped / pixels if pixels else 1.0
    max_abs = float(np.abs(a - b).max()) if pixels else 0.0
    iou, counts, confusions = _class_stats(a, b, labels)
    return Comparison(
        kind="labels", passed=agreement >= tol.min_agreement, shape=tuple(np.asarray(paddle).shape), dtypes=dtypes,
        pixels=pixels, flipped=flipped, agreement=agreement, max_abs_diff=max_abs, class_iou=iou,
        class_pixels=counts, confusions=confusions, where=locate(diff), mask=diff.any(axis=0),
    )  # fmt: skip


def compare_logits(paddle: np.ndarray, onnx: np.ndarray, tolerance: Tolerance | None = None,
                   labels: Sequence[str] | None = None) -> Comparison:  # fmt: skip
    """Compare two float outputs ``[N, C, H, W]`` (also ``[N, H, W]``/``[H, W]``: one channel)."""
    tol = tolerance or Tolerance()
    dtypes = (str(np.asarray(paddle).dtype), str(np.asarray(onnx).dtype))
    a, b = _as_score_batch(paddle), _as_score_batch(onnx)
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

    # argmax flips; a flip is a tie when Paddle's margin between the two classes is within what the tolerance allows
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
        kind="logits", passed=passed, shape=tuple(np.asarray(paddle).shape), dtypes=dtypes, pixels=pixels,
        flipped=flipped, agreement=1.0 - flipped / pixels if pixels else 1.0, max_abs_diff=max_abs,
        class_iou=iou, class_pixels=counts, confusions=confusions, where=locate(mask), values=int(a.size),
        mean_abs_diff=mean_abs, cosine=cosine, allclose=allclose, atol=atol, max_abs_reference=max_ref,
        out_of_tolerance=out_of_tol, ties=ties, real_flips=flipped - ties, nonfinite=nonfinite, rtol=tol.rtol,
        mask=mask.any(axis=0),
    )  # fmt: skip


def locate(mask: np.ndarray, grid: tuple[int, int] = GRID) -> Where:
    """Bounding box, coarse grid counts and worst cells of a disagreement mask ``[H, W]`` or ``[N, H, W]``."""
    counts2d = np.asarray(mask, dtype=bool)
    counts2d = counts2d.reshape((-1, *counts2d.shape[-2:])).sum(axis=0)
    h, w = counts2d.shape
    rows, cols = min(grid[0], max(h, 1)), min(grid[1], max(w, 1))
    ch, cw = -(-h // rows), -(-w // cols)
    padded = np.zeros((rows * ch, cols * cw), dtype=np.int64)
    padded[:h, :w] = counts2d
    cells = padded.reshape(rows, ch, cols, cw).sum(axis=(1, 3))
    if not cells.any():
        return Where((h, w), None, (ch, cw), cells, ())
    ys, xs = np.nonzero(counts2d)
    bbox = (int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max()))
    order = np.argsort(-cells, axis=None, kind="stable")[:MAX_REGIONS]
    regions = []
    for flat in order:
        r, c = divmod(int(flat), cols)
        if cells[r, c] == 0:
            break
        sub = counts2d[r * ch : (r + 1) * ch, c * cw : (c + 1) * cw]
        sy, sx = np.nonzero(sub)
        area = sub.shape[0] * sub.shape[1]
        regions.append({
            "cell": [r, c], "x": [c * cw + int(sx.min()), c * cw + int(sx.max())],
            "y": [r * ch + int(sy.min()), r * ch + int(sy.max())], "pixels": int(cells[r, c]),
            "share": round(int(cells[r, c]) / area, 6),
        })  # fmt: skip
    return Where((h, w), bbox, (ch, cw), cells, tuple(regions))


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
        return Comparison("mismatch", False, first.shape, first.dtypes, 0, 0, 0.0, None, problem=problems or "mixed")
    pixels = sum(c.pixels for c in comparisons)
    flipped = sum(c.flipped for c in comparisons)
    counts: dict[str, dict[str, int]] = {}
    for c in comparisons:
        for name, rec in c.class_pixels.items():
            into = counts.setdefault(name, {"paddle": 0, "onnx": 0, "both": 0})
            for k in into:
                into[k] += rec[k]
    iou = {name: _iou(rec) for name, rec in counts.items()}
    pairs: dict[tuple[str, str], int] = {}
    for c in comparisons:
        for conf in c.confusions:
            pairs[conf["paddle"], conf["onnx"]] = pairs.get((conf["paddle"], conf["onnx"]), 0) + conf["pixels"]
    confusions = tuple(
        {"paddle": p, "onnx": o, "pixels": n} for (p, o), n in sorted(pairs.items(), key=lambda kv: -kv[1])
    )[:MAX_CONFUSIONS]
    diffs = [c.max_abs_diff for c in comparisons]
    max_abs = None if any(d is None for d in diffs) else max(diffs)  # type: ignore[type-var]
    common: dict[str, Any] = dict(
        kind=first.kind, passed=passed, shape=first.shape, dtypes=first.dtypes, pixels=pixels, flipped=flipped,
        agreement=1.0 - flipped / pixels if pixels else 1.0, max_abs_diff=max_abs, class_iou=iou,
        class_pixels=counts, confusions=confusions,
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
        names[i]: {"paddle": int(confusion[i].sum()), "onnx": int(confusion[:, i].sum()), "both": int(confusion[i, i])}
        for i in range(k)
    }
    iou = {name: _iou(rec) for name, rec in counts.items()}
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    worst = np.argsort(-off, axis=None, kind="stable")[:MAX_CONFUSIONS]
    confusions = tuple(
        {"paddle": names[f // k], "onnx": names[f % k], "pixels": int(off.flat[f])}
        for f in map(int, worst)
        if off.flat[f]
    )
    return iou, counts, confusions


def _iou(rec: dict[str, int]) -> float:
    union = rec["paddle"] + rec["onnx"] - rec["both"]
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
