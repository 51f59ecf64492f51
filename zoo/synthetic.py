"""Synthetic street-like pictures for demos, verification and benchmarks (no licensed images involved).

Pure noise makes a segmentation network answer one class everywhere; a street layout — sky, buildings, road, lane
marks, a car, plus seeded texture — gives it regions and boundaries, which is where backends disagree if they do.
"""

from __future__ import annotations

import numpy as np


def street_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 ``[height, width, 3]`` street-like picture; the same seed gives the same picture."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)  # drawn in RGB
    horizon = max(height // 2, 1)
    sky = np.linspace(150, 235, max(height // 3, 1), dtype=np.float32)[:, None]
    img[height // 3 : horizon] = (60, 62, 66)
    img[: height // 3] = np.stack([sky - 60, sky - 20, sky + 10], -1).clip(0, 255).astype(np.uint8)
    step = max(width // int(rng.integers(6, 10)), 1)
    for x0 in range(0, width, step):
        top = int(rng.integers(height // 8, max(height // 3, height // 8 + 1)))
        shade = int(rng.integers(70, 150))
        cv2.rectangle(img, (x0, top), (x0 + step - 3, horizon), (shade + 10, shade, shade), -1)
    img[horizon:] = (95, 90, 90)
    road = np.array([[0, height], [width, height], [width * 6 // 10, horizon], [width * 4 // 10, horizon]], np.int32)
    cv2.fillPoly(img, [road], (115, 115, 120))
    for y in range(horizon + 10, height, max(height // 12, 4)):
        cv2.line(img, (width // 2, y), (width // 2, y + max(height // 28, 1)), (240, 240, 240), max(width // 256, 1))
    cx = int(rng.integers(width // 10, width // 2))
    cv2.rectangle(img, (cx, height * 5 // 8), (cx + width // 6, height * 6 // 8), (180, 40, 40), -1)
    noise = rng.integers(-8, 9, img.shape, dtype=np.int16)
    return (img.astype(np.int16) + noise).clip(0, 255).astype(np.uint8)


def write_street_png(path, height: int, width: int, seed: int = 0) -> None:
    """Write :func:`street_scene` as a PNG file."""
    import cv2

    if not cv2.imwrite(str(path), street_scene(height, width, seed)[:, :, ::-1]):
        raise OSError(f"could not write {path}")
