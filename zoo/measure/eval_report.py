"""``zoo eval --report DIR``: eval.json, a per-class IoU bar chart, a confusion matrix per backend and the worst
images, drawn with OpenCV/numpy; index.html ties them together.

``confusion_<backend>[-<precision>].png``: rows are the ground-truth classes, columns the predicted ones, each row
normalised to 100 % of its class's pixels (ignored pixels left out), white 0 % to dark blue 100 %, the diagonal
outlined. Only the classes found in the labels or the predictions get a row and a column (a partial evaluation of
ADE20K's 150 classes shows fewer); the cells shrink with the class count, from 40 px (numbers in them while they fit)
to 10 px (150 classes: a 1500 px grid, names still legible).

``worst/<rank>_<backend>_<stem>.jpg`` shows, left to right: the image, the prediction and the ground truth as colour
overlays, and the errors (red where the prediction is wrong, grey where the label is ignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.store.userfiles import write_user_file
from zoo.util import json_text

if TYPE_CHECKING:
    import numpy as np

BAR_COLORS = ((66, 133, 244), (234, 67, 53), (52, 168, 83), (251, 188, 5))  # RGB, one per backend
FULL = (8, 48, 107)  # RGB of a 100 % confusion cell (ColorBrewer's darkest blue); 0 % is white
NO_TRUTH = (225, 225, 225)  # RGB of a row whose class has no ground-truth pixel: nothing to normalise by
DIAGONAL = (230, 120, 0)  # RGB outline of the diagonal's cells (the right answers)


def check_out(out: Path) -> None:
    """Refuse an unusable --report folder before the evaluation, not after it: an existing file, a read-only or
    uncreatable folder, or a planted ``worst`` symlink (zoo writes only inside the folder it was given)."""
    from zoo.store import userfiles

    userfiles.check_folder(out, "--report")
    if (out / "worst").is_symlink():
        raise ZooError(f"{out / 'worst'} is a symlink; zoo writes its images only inside {out} — remove it, or "
                       "choose another folder with --report")  # fmt: skip
    userfiles.check_folder(out / "worst", "--report")


def write_report(result: Any, out: Path) -> list[Path]:
    """Write the report files for an EvalResult into ``out``; return their paths.

    Every file goes through zoo's one writer for user files (atomic: a reader sees the old file or the new one, and a
    planted symlink is replaced, never written through).
    """
    check_out(out)  # again: the folder may have changed during the evaluation
    written = [out / "eval.json", out / "class_iou.png"]
    write_user_file(written[0], json_text(result.as_dict()) + "\n")  # a confusion matrix row per line
    chart = class_iou_chart(result.labels, {k: v["class_iou"] for k, v in result.backends.items()})
    write_user_file(written[1], _encoded(".png", chart))
    for key, summary in result.backends.items():
        path = out / confusion_name(key)
        matrix = summary["confusion"]
        write_user_file(path, _encoded(".png", confusion_chart(result.labels, matrix, shown_classes(matrix), key)))
        written.append(path)
    colors = _colors(result)
    for key, worst in result.worst.items():
        for rank, item in enumerate(worst, 1):
            path = out / "worst" / f"{rank}_{key.replace('/', '-')}_{item.image.stem}.jpg"
            panel = captioned(error_panel(item.rgb, item.pred, item.label, colors),
                              ("image", f"prediction ({key})", "ground truth", "errors (red)"),
                              f"#{rank} worst for {key}: {item.image.name}, its mIoU {item.score:.1%}")  # fmt: skip
            write_user_file(path, _encoded(".jpg", panel))
            written.append(path)
    written.append(write_index(result, out, written))
    return written


def captioned(panel: np.ndarray, captions: tuple[str, ...], note: str) -> np.ndarray:
    """``panel`` (equal-width pictures side by side) under a band naming each picture, and a line saying which image
    it is and how it scored."""
    import cv2
    import numpy as np

    h, w = panel.shape[:2]
    band = np.full((40, w, 3), 255, np.uint8)
    step = w // len(captions)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    cv2.putText(band, note, (4, 15), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    for i, caption in enumerate(captions):
        cv2.putText(band, caption, (i * step + 4, 34), font, scale, (60, 60, 60), 1, cv2.LINE_AA)
    return np.concatenate([band, panel], axis=0)


def write_index(result: Any, out: Path, written: list[Path]) -> Path:
    """The report's index.html: the scores per backend, the per-class IoU chart and the worst images."""
    from zoo.measure import report_page

    d = result.as_dict()
    keys = list(d["backends"])
    facts = [f"{d['model']} on {d['data']} ({d['layout']}): {d['images']} images, mIoU "
             + ", ".join(f"{k} {d['backends'][k]['miou']:.2%}" for k in keys),
             f"mode {d['mode']}; {d['convention']}"]  # fmt: skip
    if d.get("interrupted"):
        facts.append("INTERRUPTED: the numbers cover the images done before Ctrl-C only")
    rows = [["mIoU %", *(f"{d['backends'][k]['miou'] * 100:.2f}" for k in keys)],
            ["acc %", *(f"{d['backends'][k]['acc'] * 100:.2f}" for k in keys)],
            ["kappa (not %)", *(f"{d['backends'][k]['kappa']:.4f}" for k in keys)]]  # fmt: skip
    figures = [("class_iou.png", "IoU per class, one bar per backend")]
    for key in keys:
        n, shown = len(result.labels), len(shown_classes(d["backends"][key]["confusion"]))
        figures.append((confusion_name(key), f"Confusion matrix of {key}: each row is a ground-truth class and sums to "
                        "100 % of its pixels, each column the class predicted there; the outlined diagonal is what is "
                        f"right. {shown} of {n} classes shown: those in the labels or the predictions."))  # fmt: skip
    figures += [(f"worst/{p.name}", p.stem.replace("_", " ")) for p in written if p.parent.name == "worst"]
    colors = _colors(result)
    legend = [(name, tuple(int(c) for c in colors[i])) for i, name in enumerate(result.labels)]
    return report_page.write_index(out, f"zoo eval {d['model']}", facts, figures, legend=legend,
                                   tables=[(["metric", *keys], rows)])  # fmt: skip


def _encoded(ext: str, rgb: np.ndarray) -> bytes:
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == ".jpg" else []
    ok, data = cv2.imencode(ext, rgb[:, :, ::-1], params)
    if not ok:
        raise ZooError(f"OpenCV cannot encode a {ext} picture of {rgb.shape[0]}x{rgb.shape[1]} (HxW) for the report")
    return data.tobytes()


def _colors(result: Any) -> np.ndarray:
    """256 RGB colours: the model's own palette for its classes, PaddleSeg's pseudo-colours past them."""
    import numpy as np

    return np.asarray(result.colors[:256], np.uint8)


def class_iou_chart(labels: tuple[str, ...], ious: dict[str, list[float]], width: int = 900) -> np.ndarray:
    """Horizontal bars: one row per class, one bar per backend, IoU 0-100 %; RGB uint8."""
    import cv2
    import numpy as np

    row, left, right, top = 22, 150, 70, 40
    n = len(labels)
    img = np.full((top + row * n + 20, width, 3), 255, np.uint8)
    span = width - left - right
    keys = list(ious)
    bar = max((row - 6) // max(len(keys), 1), 2)
    for j, key in enumerate(keys):
        color = BAR_COLORS[j % len(BAR_COLORS)]
        cv2.rectangle(img, (left + 120 * j, 10), (left + 120 * j + 12, 22), color, -1)
        cv2.putText(img, key, (left + 120 * j + 16, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for x in range(0, 101, 25):  # grid every 25 %
        gx = left + span * x // 100
        cv2.line(img, (gx, top - 4), (gx, top + row * n), (220, 220, 220), 1)
        cv2.putText(img, f"{x}", (gx - 8, top + row * n + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (90, 90, 90), 1)
    for i, name in enumerate(labels):
        y = top + row * i
        cv2.putText(img, name[:18], (6, y + row - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for j, key in enumerate(keys):
            values = ious[key]
            value = values[i] if i < len(values) else 0.0
            y0 = y + 3 + j * bar
            cv2.rectangle(img, (left, y0), (left + int(span * value), y0 + bar - 1), BAR_COLORS[j % len(BAR_COLORS)], -1)
            if j == len(keys) - 1 or len(keys) == 1:
                cv2.putText(img, f"{value * 100:.1f}", (left + int(span * value) + 4, y + row - 7),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    return img


def error_panel(rgb: np.ndarray, pred: np.ndarray, label: np.ndarray, palette: np.ndarray,
                max_width: int = 2048) -> np.ndarray:  # fmt: skip
    """Image | prediction overlay | ground-truth overlay | errors, side by side (RGB uint8)."""
    import cv2
    import numpy as np

    from zoo import postprocess

    ignored = label == 255
    pred_mask = palette[np.asarray(pred, np.int64) % len(palette)]
    gt_mask = palette[np.where(ignored, 0, label).astype(np.int64) % len(palette)]
    gt_mask[ignored] = 0
    wrong = (np.asarray(pred, np.int64) != label) & ~ignored
    errors = (rgb // 3).astype(np.uint8)
    errors[wrong] = (230, 30, 30)
    errors[ignored] = (128, 128, 128)
    panel = np.concatenate([rgb, postprocess.overlay(rgb, pred_mask, 0.5), postprocess.overlay(rgb, gt_mask, 0.5),
                            errors], axis=1)  # fmt: skip
    if panel.shape[1] > max_width:  # four 2048-wide Cityscapes panels would make an 8192-pixel JPEG
        scale = max_width / panel.shape[1]
        panel = cv2.resize(panel, (max_width, max(int(panel.shape[0] * scale), 1)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(panel)


def confusion_name(key: str) -> str:
    """The report's file for one backend column: ``confusion_onnx.png``, ``confusion_onnx-int8.png``."""
    return f"confusion_{key.replace('/', '-')}.png"


def shown_classes(matrix: Any) -> list[int]:
    """The classes a confusion picture shows: those with pixels in the labels (a row) or the predictions (a column)."""
    import numpy as np

    m = np.asarray(matrix, np.int64)
    return [int(i) for i in np.flatnonzero((m.sum(axis=0) + m.sum(axis=1)) > 0)]


def confusion_chart(labels: tuple[str, ...], matrix: Any, shown: list[int], key: str) -> np.ndarray:
    """The row-normalised confusion matrix of ``shown`` classes (rows: ground truth), names on both axes; RGB uint8."""
    import cv2
    import numpy as np

    m = np.asarray(matrix, np.int64)[np.ix_(shown, shown)]
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape, np.float64), where=rows > 0)
    k = max(len(shown), 1)
    cell = int(np.clip(900 // k, 10, 40))  # 19 classes: 40 px, 150: 10 px
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, (0.45 if cell >= 18 else 0.32)
    names = [(labels[i] if i < len(labels) else str(i))[:20] for i in shown]
    text_w = max([cv2.getTextSize(n, font, scale, 1)[0][0] for n in names] + [40]) + 8
    title = f"{key}: rows = ground truth (each sums to 100 %), columns = prediction"
    left, top, grid = text_w + 24, 30 + text_w + 24, k * cell
    width = max(left + grid + 70, cv2.getTextSize(title, font, 0.5, 1)[0][0] + 16)
    img = np.full((top + max(grid, 110) + 12, width, 3), 255, np.uint8)  # 110: room for the sideways axis title
    cv2.putText(img, title, (8, 20), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    full = np.asarray(FULL, np.float64)
    for r in range(len(shown)):
        y = top + r * cell
        for c in range(len(shown)):
            x, v = left + c * cell, share[r, c]
            color = NO_TRUTH if rows[r, 0] == 0 else tuple(int(round(255 + (f - 255) * v)) for f in full)
            cv2.rectangle(img, (x, y), (x + cell - 1, y + cell - 1), color, -1)
            if cell >= 28 and rows[r, 0] and m[r, c]:
                text = f"{v * 100:.0f}" if v >= 0.005 else "<1"
                (tw, th), _ = cv2.getTextSize(text, font, 0.4, 1)
                ink = (255, 255, 255) if v > 0.5 else (0, 0, 0)
                cv2.putText(img, text, (x + (cell - tw) // 2, y + (cell + th) // 2), font, 0.4, ink, 1, cv2.LINE_AA)
        for inset in range(2 if cell >= 20 else 1):  # 1-pixel lines, inside the cell
            x = left + r * cell + inset
            cv2.rectangle(img, (x, y + inset), (x + cell - 1 - 2 * inset, y + cell - 1 - 2 * inset), DIAGONAL, 1)
        (tw, th), _ = cv2.getTextSize(names[r], font, scale, 1)
        cv2.putText(img, names[r], (left - 6 - tw, y + (cell + th) // 2), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    # column names and the axis titles, written sideways: drawn on a strip that is then turned
    strip = np.full((grid, text_w, 3), 255, np.uint8)
    for c, name in enumerate(names):
        th = cv2.getTextSize(name, font, scale, 1)[0][1]
        cv2.putText(strip, name, (4, c * cell + (cell + th) // 2), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    img[top - text_w - 2 : top - 2, left : left + grid] = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
    cv2.putText(img, "prediction", (left, top - text_w - 10), font, 0.5, (60, 60, 60), 1, cv2.LINE_AA)
    side = np.full((18, min(grid, 200) if grid >= 110 else 110, 3), 255, np.uint8)
    cv2.putText(side, "ground truth", (2, 13), font, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    side = cv2.rotate(side, cv2.ROTATE_90_COUNTERCLOCKWISE)
    img[top : top + side.shape[0], 2 : 2 + side.shape[1]] = side
    # the colour scale, 100 % at the top
    x0, h = left + grid + 12, max(grid, 60)
    ramp = np.linspace(1.0, 0.0, h)[:, None, None]
    img[top : top + h, x0 : x0 + 14] = np.round(255 + (full - 255) * ramp).astype(np.uint8)
    for v, y in ((100, top + 8), (50, top + h // 2 + 4), (0, top + h - 2)):
        cv2.putText(img, f"{v}%", (x0 + 18, y), font, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    return img
