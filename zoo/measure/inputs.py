"""The images ``zoo verify`` and ``zoo tune`` feed both runners: the files given, else seeded synthetic street scenes
(so the same command sees the same pixels on every machine)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from zoo.errors import ImageError
from zoo.synthetic import street_scene


def inputs(images: Sequence[str | Path] | None, size: tuple[int, int], count: int,
           seed: int) -> Iterator[tuple[str, np.ndarray]]:  # fmt: skip
    """(label, RGB uint8) per input: the files given, else ``count`` seeded synthetic images of ``size`` (H, W)."""
    if images:
        from zoo.images import read_image

        for path in images:
            yield str(path), read_image(path)
        return
    h, w = size
    if h < 1 or w < 1 or count < 1:
        raise ImageError(f"synthetic inputs need a positive size and count, got {h}x{w} and {count}")
    for index in range(count):
        yield f"synthetic:{seed}:{index}", street_scene(h, w, seed=seed * 1000 + index)
