"""What a person looks at in a ``zoo verify --report`` folder: per image, the reference's and the candidate's label
maps side by side with their disagreement, under a legend of the classes present; and the folder's index.html."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from zoo.registry.spec import Architecture

GAP = 8  # pixels of white between the panels
CAPTION = 22  # pixels of the caption band above the panels


def labels_of(output: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A backend's raw output as an [H, W] label map (class ids, or the argmax of scores)."""
    from zoo.runners.tensors import output_to_labels

    return output_to_labels(output, size)


def side_by_side(view: np.ndarray, outputs: tuple[np.ndarray, np.ndarray], arch: Architecture, marked: np.ndarray,
                 names: tuple[str, str] = ("reference", "candidate")) -> np.ndarray:  # fmt: skip
    """RGB picture: [reference colours | candidate colours | disagreement], captioned, with a legend below."""
    import cv2

    from zoo import postprocess

    h, w = view.shape[:2]
    maps = [labels_of(o, (h, w)) for o in outputs]
    colors = arch.colors(max(int(max(m.max() for m in maps)) + 1, len(arch.labels)))
    panels = [postprocess.colorize(m, colors) for m in maps] + [marked]
    captions = [names[0], names[1], "differences"]
    width = 3 * w + 2 * GAP
    canvas = np.full((CAPTION + h, width, 3), 255, np.uint8)
    for i, (panel, caption) in enumerate(zip(panels, captions)):
        x0 = i * (w + GAP)
        canvas[CAPTION:, x0 : x0 + w] = panel
        cv2.putText(canvas, caption, (x0 + 2, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    both = np.concatenate(maps, axis=1)
    names_all = tuple(arch.labels) + tuple(f"class_{i}" for i in range(len(arch.labels), len(colors)))
    return postprocess.legend(canvas, both, names_all, colors)


def write_side_by_side(path: Path, view: np.ndarray, outputs: tuple[np.ndarray, np.ndarray], arch: Architecture,
                       marked: np.ndarray, names: tuple[str, str] = ("reference", "candidate")) -> None:  # fmt: skip
    """:func:`side_by_side` as a PNG."""
    import cv2

    from zoo.store import userfiles

    ok, data = cv2.imencode(".png", np.ascontiguousarray(side_by_side(view, outputs, arch, marked, names)[:, :, ::-1]))
    if not ok:
        raise OSError(f"cannot encode the report picture {path}")
    userfiles.write_user_file(path, data.tobytes())


def write_index(folder: Path, result: Any, arch: Architecture) -> Path:
    """The report's index.html: verdict, backends, per-image agreement and the side-by-side pictures."""
    from zoo.measure import report_page

    pair = " vs ".join(result.pair)
    facts = [result.summary(), f"model: {result.name}; backends compared: {pair} (the first is the reference)"]
    facts += [f"{b}: {d.get('engine', '?')} {d.get('version', '')}, {d.get('precision', 'fp32')}"
              for b, d in result.backends.items()]  # fmt: skip
    if result.weights == "random":
        facts.append("note: an untrained export (random weights): the label maps are noise")
    rows = [[c.image, f"{c.size[0]}x{c.size[1]}", f"{c.comparison.agreement:.4%}", "PASS" if c.comparison.passed
             else "FAIL"] for c in result.images]  # fmt: skip
    figures = []
    present: set[str] = set()
    for check in result.images:
        if check.png:
            sides = Path(check.png).with_suffix(".sides.png")
            figures.append((sides.name, f"{check.image}: {pair}, and where they differ"))
        present |= set(check.comparison.class_iou)
    colors = arch.colors()
    index = {name: i for i, name in enumerate(arch.labels)}
    legend = [(name, tuple(int(c) for c in colors[index[name]])) for name in arch.labels if name in present]
    return report_page.write_index(folder, f"zoo verify {result.name}", facts, figures, legend=legend,
                                   tables=[(["image", "size (HxW)", "agreement", "verdict"], rows)])  # fmt: skip
