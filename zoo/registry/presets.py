"""Class names and colours of the public datasets PaddleSeg trains on, as data, for ``--labels PRESET``.

``cityscapes``: the 19 train ids and their official colours (cityscapesScripts' ``labels.py``). ``ade20k``: the 150
SceneParse150 classes (label 0 "other" is dropped: ``reduce_zero_label``) with the colours mmsegmentation and
PaddleSeg's visualisers use. ``voc``: the 21 PASCAL VOC 2012 classes with VOC's bit-interleaved colour map.
``camvid``: the 11 classes of SegNet's CamVid split, with their colours. ``paddleseg`` is a palette only: PaddleSeg's
pseudo-colour map (class ``c`` gets the bit-interleaved colour of ``c + 1``), what its ``predict.py`` draws with.

A model whose labels are a preset's (or whose registry entry names the preset's dataset and has its class count)
and that has no palette of its own draws with that preset's colours: :func:`palette_of`.
"""

from __future__ import annotations

RGB = tuple[int, int, int]

CITYSCAPES_LABELS: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

CITYSCAPES_PALETTE: tuple[RGB, ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153), (250, 170, 30),
    (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142),
    (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip

ADE20K_LABELS: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip

ADE20K_PALETTE: tuple[RGB, ...] = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80), (140, 140, 140),
    (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7), (150, 5, 61), (120, 120, 70), (8,
    255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4), (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230,
    250), (255, 6, 51), (11, 102, 255), (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92),
    (112, 9, 255), (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255), (224,
    255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20), (255, 8, 41), (255, 5, 153),
    (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255), (140, 140, 140), (250, 10, 15), (20, 255, 0), (31,
    255, 0), (255, 31, 0), (255, 224, 0), (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255),
    (31, 0, 255), (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112), (0, 255, 133), (255, 0,
    0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0), (0, 82, 255), (0, 255, 41), (0,
    255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153), (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0,
    102), (255, 173, 0), (255, 0, 20), (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0,
    255, 194), (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255), (0, 255, 163),
    (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255), (163, 255, 0), (255, 235, 0), (8, 184,
    170), (133, 0, 255), (0, 255, 92), (184, 0, 255), (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112),
    (92, 255, 0), (0, 224, 255), (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255,
    0, 163), (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255), (255, 0,
    122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255), (255, 255, 0), (0, 153, 255),
    (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0), (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0,
    255), (0, 255, 184), (0, 92, 255), (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0),
    (92, 0, 255)
)  # fmt: skip

VOC_LABELS: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

CAMVID_LABELS: tuple[str, ...] = (
    "sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car", "pedestrian", "bicyclist",
)  # fmt: skip

CAMVID_PALETTE: tuple[RGB, ...] = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0), (192, 128, 128),
    (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)  # fmt: skip


def bit_colour(index: int) -> RGB:
    """The colour VOC's and PaddleSeg's colour maps give ``index``: its bits interleaved over R, G, B, high bits first."""
    rgb = [0, 0, 0]
    bit, value = 7, index
    while value:
        for channel in range(3):
            rgb[channel] |= ((value >> channel) & 1) << bit
        bit, value = bit - 1, value >> 3
    return rgb[0], rgb[1], rgb[2]


def voc_palette(n: int = 21) -> tuple[RGB, ...]:
    """PASCAL VOC's colour map: class ``c`` gets the bit-interleaved colour of ``c`` (so background is black)."""
    return tuple(bit_colour(index) for index in range(n))


def paddleseg_palette(n: int = 256) -> tuple[RGB, ...]:
    """PaddleSeg's pseudo-colour map: class ``c`` gets the bit-interleaved colour of index ``c + 1``."""
    return tuple(bit_colour(index) for index in range(1, n + 1))


LABELS: dict[str, tuple[str, ...]] = {
    "cityscapes": CITYSCAPES_LABELS, "ade20k": ADE20K_LABELS, "voc": VOC_LABELS, "camvid": CAMVID_LABELS,
}  # fmt: skip
PALETTES: dict[str, tuple[RGB, ...]] = {
    "cityscapes": CITYSCAPES_PALETTE, "ade20k": ADE20K_PALETTE, "voc": voc_palette(), "camvid": CAMVID_PALETTE,
    "paddleseg": paddleseg_palette(),
}  # fmt: skip


def palette_of(labels: tuple[str, ...] | None = None, dataset: str | None = None,
               num_classes: int | None = None) -> tuple[RGB, ...] | None:
    """The preset colours a model without a palette of its own draws with: those of the preset its labels are, else
    (with ``num_classes`` the dataset's) those of the preset its ``dataset`` names; None: neither."""
    for name, names in LABELS.items():
        if labels is not None and tuple(labels) == names and name in PALETTES:
            return PALETTES[name]
    key = (dataset or "").strip().lower()
    if key in LABELS and key in PALETTES and num_classes == len(LABELS[key]):
        return PALETTES[key]
    return None


# what each dataset's evaluation ignores, and whether its label 0 is "other" (ADE20K's convention)
EVAL: dict[str, dict[str, int | bool]] = {
    "cityscapes": {"ignore_index": 255, "reduce_zero_label": False},
    "ade20k": {"ignore_index": 255, "reduce_zero_label": True},
    "voc": {"ignore_index": 255, "reduce_zero_label": False},
    "camvid": {"ignore_index": 255, "reduce_zero_label": False},
}
