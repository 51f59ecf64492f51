"""Labelled data for ``zoo eval``: three layouts, one list of (image, label) pairs.

* a **Cityscapes root**: ``leftImg8bit/<split>/<city>/<x>_leftImg8bit.png`` with
  ``gtFine/<split>/<city>/<x>_gtFine_labelTrainIds.png`` (``--split val`` by default);
* a **PaddleSeg list file**: one ``image label`` pair per line, paths relative to the list file's folder;
* a **folder pair**: ``images/`` and ``labels/`` side by side, matched by file stem.

Labels hold train ids (8-bit grey or paletted PNG, whose palette indices are the ids, as PaddleSeg reads them);
255 is ignored. A missing label or one whose size differs from its image is found before any inference
(:func:`check`); one that cannot be decoded is found when it is read (:func:`read_label`). Either is a
:class:`~zoo.errors.DatasetError` naming the file, or, with ``skip_bad``, a counted skip.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zoo import images
from zoo.errors import DatasetError, ImageError

if TYPE_CHECKING:
    import numpy as np

LAYOUTS = ("cityscapes", "list", "folders")
CITYSCAPES_IMAGE = "_leftImg8bit.png"
CITYSCAPES_LABEL = "_gtFine_labelTrainIds.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Sample:
    """One labelled image."""

    image: Path  # the picture
    label: Path  # its train-id map, same size


@dataclass(frozen=True)
class Dataset:
    """A resolved data set: its layout and samples, in a stable order."""

    path: Path  # what was given: root folder or list file
    layout: str  # "cityscapes", "list" or "folders"
    split: str | None  # the Cityscapes split read; None for the other layouts
    samples: tuple[Sample, ...]  # every pair, sorted

    @property
    def cityscapes_val(self) -> bool:
        """Cityscapes' val split: the data the registry's published mIoUs were measured on."""
        return self.layout == "cityscapes" and self.split == "val"

    def describe(self) -> str:
        split = f" ({self.split})" if self.split else ""
        return f"{self.path} [{self.layout}{split}, {len(self.samples)} images]"


def open_dataset(path: str | Path, *, split: str = "val") -> Dataset:
    """Find the layout of ``path`` and list its samples (existence is checked by :func:`check`)."""
    path = Path(path).expanduser()
    if path.is_file():
        return _list_file(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: no such data set; give a Cityscapes root, a PaddleSeg list file or a folder "
                           "with images/ and labels/")  # fmt: skip
    if (path / "leftImg8bit").is_dir():
        return _cityscapes(path, split)
    if (path / "images").is_dir() and (path / "labels").is_dir():
        return _folders(path)
    if (path / "images").is_dir():
        raise DatasetError(f"{path} has images/ but no labels/: put each image's label map (a PNG of class ids, same "
                           "name) in labels/")  # fmt: skip
    raise DatasetError(
        f"{path} is no data set zoo knows: expected leftImg8bit/ + gtFine/ (Cityscapes), images/ + labels/, "
        "or a PaddleSeg list file ('image label' per line); see 'zoo eval --help'"
    )


def _cityscapes(root: Path, split: str) -> Dataset:
    folder = root / "leftImg8bit" / split
    if not folder.is_dir():
        have = sorted(p.name for p in (root / "leftImg8bit").iterdir() if p.is_dir())
        raise DatasetError(f"{root}: no split '{split}' under leftImg8bit/ (it has: {', '.join(have) or 'none'}); "
                           "choose one with --split")  # fmt: skip
    samples = []
    for image in sorted(folder.glob(f"*/*{CITYSCAPES_IMAGE}")):
        prefix = image.name[: -len(CITYSCAPES_IMAGE)]
        samples.append(Sample(image, root / "gtFine" / split / image.parent.name / f"{prefix}{CITYSCAPES_LABEL}"))
    if not samples:
        raise DatasetError(f"{folder}: no <city>/*{CITYSCAPES_IMAGE} images")
    return Dataset(root, "cityscapes", split, tuple(samples))


def _list_file(path: Path) -> Dataset:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the list file: {exc}") from None
    base = path.parent
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DatasetError(f"{path}, line {number}: expected 'image label' (two paths relative to "
                               f"{base}), got {line.strip()!r}")  # fmt: skip
        samples.append(Sample(base / parts[0], base / parts[1]))
    if not samples:
        raise DatasetError(f"{path}: the list file names no 'image label' pairs")
    return Dataset(path, "list", None, tuple(samples))


def _folders(root: Path) -> Dataset:
    from zoo import images

    labels: dict[str, Path] = {}
    for label in sorted((root / "labels").iterdir()):
        if images.is_image_name(label):
            labels.setdefault(label.stem, label)
    samples = []
    for image in sorted((root / "images").iterdir()):
        if images.is_image_name(image):  # a missing label keeps the stem's .png name, so the error can name it
            samples.append(Sample(image, labels.get(image.stem, root / "labels" / f"{image.stem}.png")))
    if not samples:
        raise DatasetError(f"{root / 'images'}: no images")
    return Dataset(root, "folders", None, tuple(samples))


def png_size(path: Path) -> tuple[int, int, int] | None:
    """(height, width, colour type) from a PNG header, or None if the file is not a PNG (raises OSError if unreadable)."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", head[16:24])
    return h, w, head[25]


def check(sample: Sample) -> str | None:
    """What is wrong with a sample before decoding it (missing files, sizes that differ), or None."""
    for kind, path in (("image", sample.image), ("label", sample.label)):
        if not path.is_file():
            return f"{path}: the {kind} is missing (of pair {sample.image.name})"
    try:
        label = png_size(sample.label)
        image = png_size(sample.image) if sample.image.suffix.lower() == ".png" else None
    except OSError as exc:
        return f"{exc.filename}: cannot read it: {exc.strerror}"
    if label is None and sample.label.suffix.lower() == ".png":
        return f"{sample.label}: the label is not a readable PNG"
    if label is not None and label[0] * label[1] > images.MAX_PIXELS:  # the header alone: nothing is decoded
        return (f"{sample.label}: the label's header claims {label[1]}x{label[0]} pixels, beyond the "
                f"{images.MAX_PIXELS // 1_000_000}-megapixel cap zoo applies to images")  # fmt: skip
    if label is not None and image is not None and label[:2] != image[:2]:
        return (f"{sample.label}: the label is {label[0]}x{label[1]} (HxW) but its image {sample.image.name} is "
                f"{image[0]}x{image[1]}")  # fmt: skip
    return None


def read_label(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A label map ``[H, W]`` of train ids at ``size`` (H, W), or a DatasetError naming the file. The images' decoder
    caps apply (checked from the header, before decoding); its ids are checked by :func:`check_ids`, once the data
    set's conventions (ADE20K's reduce_zero_label) have been applied."""
    import cv2
    import numpy as np

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the label: {exc.strerror or exc}") from None
    try:
        images.check_header(path, data)
    except ImageError as exc:
        raise DatasetError(f"{str(exc).split('; zoo reads')[0]} (a label)") from None
    if data[:8] == PNG_SIGNATURE and len(data) > 25 and data[25] == 3:  # paletted: the indices are the ids
        label = _palette_indices(path, data)
    else:
        label = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise DatasetError(f"{path}: the label is not a readable image")
    if label.ndim == 3:
        raise DatasetError(f"{path}: the label has {label.shape[2]} channels; labels hold one train id per pixel "
                           "(Cityscapes' *_labelTrainIds.png, not the colour *_color.png)")  # fmt: skip
    if label.shape != tuple(size):
        raise DatasetError(f"{path}: the label is {label.shape[0]}x{label.shape[1]} (HxW) but its image is "
                           f"{size[0]}x{size[1]}")  # fmt: skip
    return label


def check_ids(path: Path | str, label: np.ndarray, num_classes: int, ignore: int = 255) -> None:
    """DatasetError naming the file, the ids and their pixel counts if ``label`` holds an id that is neither a
    class (0 .. num_classes - 1) nor ``ignore``."""
    bad = unknown_ids(label, num_classes, ignore)
    if bad:
        raise DatasetError(f"{path}: label ids outside the model's {num_classes} classes and the ignore value "
                           f"{ignore}: {shown_ids(bad)}; fix the labels (or their train-id mapping), or pass "
                           "--ignore-unknown-ids to count them as ignored")  # fmt: skip


def unknown_ids(label: np.ndarray, num_classes: int, ignore: int = 255) -> dict[int, int]:
    """The ids in ``label`` that are neither a class (0 .. num_classes - 1) nor ``ignore``, with their pixel counts."""
    import numpy as np

    ids, counts = np.unique(label, return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, counts) if (i < 0 or i >= num_classes) and i != ignore}


def shown_ids(counts: dict[int, int], most: int = 8) -> str:
    """``10 (613 px), 13 (77 px)``: label ids with their pixel counts, the first ``most`` of them."""
    items = sorted(counts.items())
    more = f" and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(f"{i} ({c} px)" for i, c in items[:most]) + more


def _palette_indices(path: Path, data: bytes) -> np.ndarray | None:
    import io

    import numpy as np

    try:
        from PIL import Image
    except ImportError:
        raise DatasetError(f"{path}: a paletted label PNG needs Pillow to read its indices: pip install pillow") from None
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im)
    except (OSError, ValueError):
        return None


def unknown_warning(ids: dict[int, int], images: int, num_classes: int) -> str | None:
    """With --ignore-unknown-ids: the one warning line that says which ids were ignored, in how many pixels."""
    if not ids:
        return None
    return (f"{images} image(s) held label ids outside the model's {num_classes} classes, counted as ignored "
            f"(--ignore-unknown-ids): {shown_ids(ids)}")  # fmt: skip
