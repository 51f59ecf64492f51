"""Where two outputs disagree: the bounding box, a coarse grid of counts and the worst cells of a disagreement mask.

Pure numpy; :mod:`zoo.measure.compare` attaches one :class:`Where` to each per-image comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

GRID = (8, 8)  # rows, cols of the coarse "where" grid
MAX_REGIONS = 3  # worst grid cells reported


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
