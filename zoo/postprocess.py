"""Label maps into pictures and summaries (numpy, vectorised).

The files of one prediction are made here, once, for every writer (``zoo run``'s both engines, ``zoo serve``,
``Segmentation.save``): :func:`label_png` (class ids), :func:`color_png` (the colour mask, pixel for pixel the label
map's size, so tools can read it as a map) and :func:`overlay_picture` (the mask blended over the image, with a
:func:`legend` strip below naming the classes present), encoded by :func:`jpeg_bytes`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np


def colorize(labels: np.ndarray, colors: Sequence[Sequence[int]]) -> np.ndarray:
    """Look up each pixel's class colour; ids past the palette wrap around it."""
    lut = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    labels = np.asarray(labels)
    if labels.dtype == np.uint8 and labels.ndim == 2:  # the usual case: one table lookup in OpenCV, ~4x numpy's
        import cv2

        table = lut[np.arange(256) % len(lut)].reshape(256, 1, 3)
        return cv2.LUT(cv2.merge([labels, labels, labels]), table)
    return lut[labels.astype(np.int64) % len(lut)]


def overlay(rgb: np.ndarray, mask: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * image + alpha * mask``, rounded to uint8 (OpenCV: ~100x a float numpy blend)."""
    import cv2

    if rgb.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {rgb.shape[:2]} and mask {mask.shape[:2]} differ in size")
    return cv2.addWeighted(np.ascontiguousarray(rgb), 1.0 - alpha, np.ascontiguousarray(mask), alpha, 0.0)


def class_shares(labels: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Share of pixels per class present in the map, largest first."""
    counts = np.bincount(np.asarray(labels).reshape(-1).astype(np.int64), minlength=len(names))
    total = max(int(counts.sum()), 1)
    shares = {
        (names[i] if i < len(names) else f"class_{i}"): round(float(c) / total, 6)
        for i, c in enumerate(counts)
        if c
    }
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


def png_bytes(ids: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """A PNG of a label map: 8-bit paletted (``palette``: 256 x 3 uint8), else 8- or 16-bit grayscale; an
    ``[H, W, 3]`` uint8 array is written as an RGB PNG.

    cv2 cannot write paletted PNGs; label maps are long runs, so zlib level 1 makes small files fast.
    """
    h, w = ids.shape[:2]
    raw = ids if ids.dtype == np.uint8 else ids.astype(">u2")
    rows = np.zeros((h, 1 + raw[0].size * raw.itemsize), np.uint8)  # each row starts with filter type 0
    rows[:, 1:] = np.ascontiguousarray(raw).view(np.uint8).reshape(h, -1)
    color_type = 2 if ids.ndim == 3 else 0 if palette is None else 3
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", w, h, 8 * raw.itemsize, color_type, 0, 0, 0))]
    if palette is not None:
        chunks.append((b"PLTE", np.ascontiguousarray(palette, dtype=np.uint8).tobytes()))
    chunks += [(b"IDAT", zlib.compress(rows.tobytes(), 1)), (b"IEND", b"")]
    body = b"".join(struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d)) for k, d in chunks)
    return b"\x89PNG\r\n\x1a\n" + body


LEGEND_FONT, LEGEND_SCALE, LEGEND_ROW, LEGEND_PAD = 0, 0.45, 22, 6  # cv2.FONT_HERSHEY_SIMPLEX is 0


def _legend_layout(texts: Sequence[str], width: int) -> tuple[list[tuple[int, int]], int]:
    """Where each legend item goes, ``(x, row)``, wrapping at ``width``; and how many rows that takes."""
    import cv2

    places, x, row = [], LEGEND_PAD, 0
    for text in texts:
        item_w = 14 + 4 + cv2.getTextSize(text, LEGEND_FONT, LEGEND_SCALE, 1)[0][0] + 12
        if x + item_w > width and x > LEGEND_PAD:
            x, row = LEGEND_PAD, row + 1
        places.append((x, row))
        x += item_w
    return places, row + 1


def legend_rows(width: int, names: Sequence[str]) -> int:
    """Rows a legend of ``width`` needs at most: every class present, each at its widest share (100%). A video's
    frames keep one size with a legend this tall, whichever classes each frame shows."""
    return _legend_layout([f"{name} 100%" for name in names], width)[1]


def legend(image: np.ndarray, labels: np.ndarray, names: Sequence[str], colors: Sequence[Sequence[int]],
           rows: int | None = None) -> np.ndarray:  # fmt: skip
    """``image`` (RGB) with a legend strip below it: a swatch and the name of each class present in ``labels``,
    largest share first, wrapped into as many rows as the image's width needs (``rows``: exactly that many, for
    pictures that must keep one size; :func:`legend_rows` says how many always suffice)."""
    import cv2

    shares = class_shares(labels, names)
    lut = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    index = {name: i for i, name in enumerate(names)}
    texts = [f"{name} {share:.0%}" for name, share in shares.items()]
    places, needed = _legend_layout(texts, image.shape[1])
    rows = needed if rows is None else rows
    strip = np.full((rows * LEGEND_ROW + LEGEND_PAD, image.shape[1], 3), 255, np.uint8)
    for name, text, (x0, row) in zip(shares, texts, places):
        if row >= rows:
            break
        cid = index.get(name, int(name.split("_")[-1]) if name.startswith("class_") else 0)
        color = tuple(int(c) for c in lut[cid % len(lut)])
        y0 = LEGEND_PAD + row * LEGEND_ROW
        cv2.rectangle(strip, (x0, y0 + 2), (x0 + 14, y0 + 16), color, -1)
        cv2.rectangle(strip, (x0, y0 + 2), (x0 + 14, y0 + 16), (0, 0, 0), 1)
        cv2.putText(strip, text, (x0 + 18, y0 + 14), LEGEND_FONT, LEGEND_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([np.asarray(image, np.uint8), strip], axis=0)


def label_png(labels: np.ndarray) -> bytes:
    """``<stem>.labels.png``: the class ids, 8-bit, 16-bit past 255 classes."""
    return png_bytes(labels if labels.dtype == np.uint8 else labels.astype(np.uint16))


def color_png(labels: np.ndarray, colors: Sequence[Sequence[int]]) -> bytes:
    """``<stem>.color.png``: the colour mask at the label map's size (no legend: tools read it as a map). Paletted,
    like PaddleSeg's pseudo-colour maps, for up to 256 classes (it decodes to the mask, and its indices are the ids);
    else RGB."""
    if labels.dtype == np.uint8 and labels.ndim == 2:
        lut = np.asarray(colors, np.uint8).reshape(-1, 3)
        return png_bytes(labels, lut[np.arange(256) % len(lut)])
    return png_bytes(colorize(labels, colors))


def overlay_picture(rgb: np.ndarray, labels: np.ndarray, names: Sequence[str], colors: Sequence[Sequence[int]],
                    alpha: float, with_legend: bool = True, rows: int | None = None) -> np.ndarray:  # fmt: skip
    """``<stem>.overlay.jpg``'s picture (RGB): the colour mask blended over the image and, ``with_legend``, the
    :func:`legend` strip below it (only the classes present, name and colour; ``rows``: :func:`legend`'s)."""
    blended = overlay(rgb, colorize(labels, colors), alpha)
    return legend(blended, labels, names, colors, rows) if with_legend else blended


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    """An RGB picture as JPEG bytes; ValueError (OpenCV's reason) when it cannot be encoded (a side past 65535)."""
    import cv2

    try:
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    except cv2.error as exc:
        raise ValueError(f"OpenCV cannot encode it as JPEG: {str(exc).strip().splitlines()[-1]}") from None
    if not ok:
        raise ValueError("OpenCV cannot encode it as JPEG")
    return data.tobytes()
