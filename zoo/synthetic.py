"""Synthetic street-like pictures for demos, verification, benchmarks and evaluation (no licensed images involved).

Pure noise makes a segmentation network answer one class everywhere; a street layout — sky, buildings, road, lane
marks, a car, plus seeded texture — gives it regions and boundaries, which is where backends disagree if they do.

Every scene comes with its label map in Cityscapes train ids (:data:`TRAIN_IDS`): sky 10, building 2, road 0, the
ground beside the road sidewalk 1, car 13. Cityscapes has no lane-marking class (its annotators label markings as
road), so lane marks are road (0) unless ``lane_id`` gives them an id of their own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TRAIN_IDS = {"road": 0, "sidewalk": 1, "building": 2, "sky": 10, "car": 13}  # Cityscapes train ids drawn here
LAYOUTS = ("cityscapes", "list", "folders")  # what write_labelled_dataset can write (zoo.measure.datasets reads all three)


def _draw(height: int, width: int, seed: int, lane_id: int | None) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)  # drawn in RGB
    lab = np.zeros((height, width), np.uint8)  # the same shapes, drawn with train ids
    ids = TRAIN_IDS
    horizon = max(height // 2, 1)
    sky = np.linspace(150, 235, max(height // 3, 1), dtype=np.float32)[:, None]
    img[height // 3 : horizon] = (60, 62, 66)
    lab[height // 3 : horizon] = ids["building"]  # the facade band behind the blocks
    img[: height // 3] = np.stack([sky - 60, sky - 20, sky + 10], -1).clip(0, 255).astype(np.uint8)
    lab[: height // 3] = ids["sky"]
    step = max(width // int(rng.integers(6, 10)), 1)
    for x0 in range(0, width, step):
        top = int(rng.integers(height // 8, max(height // 3, height // 8 + 1)))
        shade = int(rng.integers(70, 150))
        cv2.rectangle(img, (x0, top), (x0 + step - 3, horizon), (shade + 10, shade, shade), -1)
        cv2.rectangle(lab, (x0, top), (x0 + step - 3, horizon), ids["building"], -1)
    img[horizon:] = (95, 90, 90)
    lab[horizon:] = ids["sidewalk"]
    road = np.array([[0, height], [width, height], [width * 6 // 10, horizon], [width * 4 // 10, horizon]], np.int32)
    cv2.fillPoly(img, [road], (115, 115, 120))
    cv2.fillPoly(lab, [road], ids["road"])
    lane = ids["road"] if lane_id is None else lane_id
    for y in range(horizon + 10, height, max(height // 12, 4)):
        start, end, thick = (width // 2, y), (width // 2, y + max(height // 28, 1)), max(width // 256, 1)
        cv2.line(img, start, end, (240, 240, 240), thick)
        cv2.line(lab, start, end, lane, thick)
    cx = int(rng.integers(width // 10, width // 2))
    cv2.rectangle(img, (cx, height * 5 // 8), (cx + width // 6, height * 6 // 8), (180, 40, 40), -1)
    cv2.rectangle(lab, (cx, height * 5 // 8), (cx + width // 6, height * 6 // 8), ids["car"], -1)
    noise = rng.integers(-8, 9, img.shape, dtype=np.int16)
    return (img.astype(np.int16) + noise).clip(0, 255).astype(np.uint8), lab


def street_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 ``[height, width, 3]`` street-like picture; the same seed gives the same picture."""
    return _draw(height, width, seed, None)[0]


def labelled_street_scene(height: int, width: int, seed: int = 0, *,
                          lane_id: int | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """:func:`street_scene` and its ``[height, width]`` uint8 label map (Cityscapes train ids; lane marks → road)."""
    return _draw(height, width, seed, lane_id)


def write_street_png(path, height: int, width: int, seed: int = 0) -> None:
    """Write :func:`street_scene` as a PNG file."""
    import cv2

    if not cv2.imwrite(str(path), street_scene(height, width, seed)[:, :, ::-1]):
        raise OSError(f"could not write {path}")


def write_labelled_dataset(root: str | Path, count: int, height: int, width: int, *, layout: str = "cityscapes",
                           split: str = "val", seed: int = 0, ignore_border: int = 0,
                           num_classes: int | None = None) -> Path:  # fmt: skip
    """Write ``count`` labelled scenes (seeds ``seed``, ``seed + 1``, ...) as a dataset zoo eval reads; return its path.

    ``layout``: ``cityscapes`` (a root with ``leftImg8bit/<split>/<city>/`` and ``gtFine/<split>/<city>/``), ``list``
    (a PaddleSeg list file ``<split>.txt`` of ``image label`` lines, returned) or ``folders`` (``images/`` + ``labels/``).
    ``ignore_border`` marks that many pixels around each label map 255 (ignored), as Cityscapes' unlabelled ego car is.
    ``num_classes``: fold the 19 Cityscapes ids into that many classes (id modulo ``num_classes``), for smaller models.
    """
    import cv2

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    root = Path(root)
    lines = []
    for i in range(count):
        rgb, lab = labelled_street_scene(height, width, seed + i)
        if num_classes is not None:
            lab[lab != 255] %= num_classes
        if ignore_border:
            b = ignore_border
            lab[:b], lab[-b:], lab[:, :b], lab[:, -b:] = 255, 255, 255, 255
        stem = f"scene{i:04d}"
        if layout == "cityscapes":
            city = f"city{i % 2}"  # two cities, as Cityscapes' split folders hold several
            image = root / "leftImg8bit" / split / city / f"{city}_{stem}_000019_leftImg8bit.png"
            label = root / "gtFine" / split / city / f"{city}_{stem}_000019_gtFine_labelTrainIds.png"
        elif layout == "list":
            image, label = root / "img" / f"{stem}.png", root / "ann" / f"{stem}.png"
            lines.append(f"img/{stem}.png ann/{stem}.png")
        else:
            image, label = root / "images" / f"{stem}.png", root / "labels" / f"{stem}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        label.parent.mkdir(parents=True, exist_ok=True)
        if not (cv2.imwrite(str(image), rgb[:, :, ::-1]) and cv2.imwrite(str(label), lab)):
            raise OSError(f"could not write {image} or {label}")
    if layout == "list":
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return root / f"{split}.txt"
    return root
