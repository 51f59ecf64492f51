"""A page as a person sees it: headless Chromium (Debian's ``chromium``; scripts/test.sh installs it) renders a
file and screenshots it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np


def screenshot(page: Path, png: Path, size: tuple[int, int] = (1280, 1600)) -> np.ndarray:
    """Render ``page`` in headless Chromium, offline, and return the screenshot as RGB ``[H, W, 3]``."""
    import cv2

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is not installed; scripts/test.sh installs it (apt-get install chromium)"
    width, height = size
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-background-networking", f"--window-size={width},{height}", f"--screenshot={png}",
         f"--user-data-dir={png.parent / '.chromium-profile'}", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and png.is_file(), proc.stderr[-2000:]
    bgr = cv2.imread(str(png), cv2.IMREAD_COLOR)
    return bgr[:, :, ::-1]


def has_colour(rgb: np.ndarray, colour: tuple[int, int, int], min_pixels: int = 50) -> bool:
    """Whether at least ``min_pixels`` pixels have exactly ``colour`` (a legend swatch is 18 x 18)."""
    return int((rgb == np.asarray(colour, np.uint8)).all(axis=2).sum()) >= min_pixels
