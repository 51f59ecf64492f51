"""A model's own facts — classes, colours, preprocessing, evaluation conventions — over its architecture's defaults.

timm keeps a network's code apart from each set of weights' pretrained config (mean/std, input size, labels); zoo
does the same: an architecture plugin says what its networks usually take and predict, a registry entry says what
*this* model takes and predicts, and the entry wins. :func:`parse` validates an entry's optional keys::

    labels = ["background", "crack"]       # or a preset: "cityscapes", "ade20k", "voc", "camvid"
    palette = [[0, 0, 0], [255, 0, 0]]      # RGB per class id, or a preset
    ignore_index = 255                      # label value evaluation skips
    reduce_zero_label = false               # true: label 0 is "other", ignored; the rest shift down by one (ADE20K)
    [models.NAME.input]                     # zoo.registry.spec.InputSpec fields; size and pad are [H, W]
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]
    size_policy = "resize"                  # keep | resize | long | short
    size = [512, 512]

:func:`architecture_for` merges them over the plugin (or over nothing, for a model without a plugin). A model with
neither its own labels nor a plugin whose labels have its class count gets ``class_0``… and a generated palette:
never another dataset's names. A model with no palette of its own (neither the entry's nor the plugin's) draws with
the preset colours of its labels, else of its ``dataset`` when it has that dataset's class count
(:func:`zoo.registry.presets.palette_of`): the built-in Cityscapes models get Cityscapes' official colours;
``palette = "paddleseg"`` asks for PaddleSeg's pseudo-colour map instead.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.registry import presets
from zoo.registry.spec import Architecture, InputSpec

ModelEntry = Any  # zoo.registry.entries.ModelEntry, which imports this module (named here only for the reader)

PROGRAM_ONLY = "exported"  # the architecture name a model without a plugin shows
SIZE_POLICIES = ("keep", "resize", "long", "short")
_INPUT_KEYS = ("name", "layout", "color", "dtype", "scale", "mean", "std", "size_policy", "size", "keep_ratio", "pad",
               "pad_value")  # fmt: skip


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pair(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v)


def read_labels(value: str, option: str = "--labels", error: type[ZooError] = ZooError) -> tuple[str, ...]:
    """``--labels``: a preset name, or a text file with one class name per line (blank lines and # comments skipped)."""
    if value in presets.LABELS:
        return presets.LABELS[value]
    lines = _lines(value, option, presets.LABELS, error)
    if not lines:
        raise error(f"{option} {value}: the file names no classes; put one class name per line")
    return tuple(lines)


def read_palette(value: str, option: str = "--palette", error: type[ZooError] = ZooError) -> tuple[presets.RGB, ...]:
    """``--palette``: a preset name (``cityscapes``, ``ade20k``, ``voc``, ``camvid``, ``paddleseg``), or a text file with
    one colour per line: ``R G B``, ``R,G,B`` or ``#rrggbb``."""
    if value in presets.PALETTES:
        return presets.PALETTES[value]
    colours = []
    for number, line in enumerate(_lines(value, option, presets.PALETTES, error), 1):
        text = line.strip()
        try:
            rgb = [int(text[i : i + 2], 16) for i in (1, 3, 5)] if text.startswith("#") and len(text) == 7 else \
                [int(v) for v in text.replace(",", " ").split()]  # fmt: skip
        except ValueError:
            rgb = []
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise error(f"{option} {value}, colour {number}: {line!r} is not 'R G B' (0-255) or '#rrggbb'")
        colours.append((rgb[0], rgb[1], rgb[2]))
    if not colours:
        raise error(f"{option} {value}: the file holds no colours")
    return tuple(colours)


def _lines(value: str, option: str, known: dict[str, Any], error: type[ZooError]) -> list[str]:
    path = Path(value).expanduser()
    if not path.is_file():
        raise error(f"{option} {value}: no such file and not a preset ({', '.join(known)})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{option} {value}: cannot read it ({exc})") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def parse(where: str, table: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """The entry's facts as ModelEntry keyword arguments; each problem appended to ``problems``."""
    out: dict[str, Any] = {}
    labels = table.get("labels")
    if isinstance(labels, str):
        if labels not in presets.LABELS:
            problems.append(f"{where}: key 'labels': unknown preset {labels!r} (presets: {', '.join(presets.LABELS)})")
        else:
            out["labels"] = presets.LABELS[labels]
    elif isinstance(labels, list):
        if not labels or not all(isinstance(n, str) and n.strip() for n in labels):
            problems.append(f"{where}: key 'labels' must be a non-empty list of non-empty strings")
        else:
            out["labels"] = tuple(labels)
    palette = table.get("palette")
    if isinstance(palette, str):
        if palette not in presets.PALETTES:
            problems.append(f"{where}: key 'palette': unknown preset {palette!r} (presets: {', '.join(presets.PALETTES)})")
        else:
            out["palette"] = presets.PALETTES[palette]
    elif isinstance(palette, list):
        ok = palette and all(isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                             and 0 <= v <= 255 for v in c) for c in palette)  # fmt: skip
        if not ok:
            problems.append(f"{where}: key 'palette' must be a list of [R, G, B] integers 0-255")
        else:
            out["palette"] = tuple((c[0], c[1], c[2]) for c in palette)
    n = table.get("num_classes")
    if isinstance(n, int) and not isinstance(n, bool):
        if n < 1:
            problems.append(f"{where}: key 'num_classes' must be at least 1, got {n}")
        elif "labels" in out and len(out["labels"]) != n:
            problems.append(f"{where}: key 'labels' names {len(out['labels'])} classes but num_classes is {n}")
    if "labels" in out and "palette" in out and len(out["palette"]) < len(out["labels"]):
        problems.append(f"{where}: key 'palette' has {len(out['palette'])} colours for {len(out['labels'])} labels")
    ignore = table.get("ignore_index")
    if isinstance(ignore, int) and not isinstance(ignore, bool):
        if not 0 <= ignore <= 65535:
            problems.append(f"{where}: key 'ignore_index' must be 0-65535 (a label value), got {ignore}")
        else:
            out["ignore_index"] = ignore
    if isinstance(table.get("reduce_zero_label"), bool):
        out["reduce_zero_label"] = table["reduce_zero_label"]
    if isinstance(table.get("input"), dict):
        spec = parse_input(f"{where}.input", table["input"], problems)
        if spec is not None:
            out["input"] = spec
    return out


def parse_input(where: str, d: dict[str, Any], problems: list[str]) -> InputSpec | None:
    """An ``input`` table as an InputSpec, or None with its problems appended."""
    start = len(problems)
    for key in sorted(set(d) - set(_INPUT_KEYS)):
        problems.append(f"{where}: unknown key '{key}' (expected {', '.join(_INPUT_KEYS)})")
    for key in ("mean", "std", "pad_value"):
        if key in d and not (isinstance(d[key], list) and len(d[key]) == 3 and all(_number(v) for v in d[key])):
            problems.append(f"{where}: key '{key}' must be 3 numbers, got {d[key]!r}")
    if isinstance(d.get("std"), list) and any(v == 0 for v in d["std"]):
        problems.append(f"{where}: key 'std' has a zero")
    if "scale" in d and not (_number(d["scale"]) and d["scale"] > 0):
        problems.append(f"{where}: key 'scale' must be a positive number, got {d['scale']!r}")
    if d.get("color", "RGB") not in ("RGB", "BGR"):
        problems.append(f"{where}: key 'color' must be \"RGB\" or \"BGR\", got {d['color']!r}")
    policy = d.get("size_policy", "keep")
    if policy not in SIZE_POLICIES:
        problems.append(f"{where}: key 'size_policy' must be one of {', '.join(SIZE_POLICIES)}, got {policy!r}")
    elif policy != "keep" and not _pair(d.get("size")):
        problems.append(f"{where}: size_policy '{policy}' needs key 'size' = [H, W] positive integers")
    for key in ("size", "pad"):
        if d.get(key) is not None and not _pair(d[key]):
            problems.append(f"{where}: key '{key}' must be [H, W] positive integers, got {d[key]!r}")
    if "keep_ratio" in d and not isinstance(d["keep_ratio"], bool):
        problems.append(f"{where}: key 'keep_ratio' must be true or false")
    for key in ("name", "layout", "dtype"):
        if key in d and not isinstance(d[key], str):
            problems.append(f"{where}: key '{key}' must be a string")
    if len(problems) > start:
        return None
    return InputSpec.from_dict(d)


def architecture_for(entry: ModelEntry, base: Architecture | None, num_classes: int | None) -> Architecture:
    """The architecture a model runs with: ``base`` (its plugin, or None) with the entry's own facts over it."""
    n = num_classes or entry.num_classes
    if base is None:
        base = Architecture(name=PROGRAM_ONLY, summary="a PaddleSeg export, run from its program", labels=())
    changes: dict[str, Any] = {}
    if entry.input is not None:
        changes["input"] = entry.input
    if entry.labels is not None:
        changes["labels"] = entry.labels
    elif n and len(base.labels) != n:  # the plugin's names are another dataset's: number the classes instead
        changes["labels"] = tuple(f"class_{i}" for i in range(n))
        changes["palette"] = None
    if entry.palette is not None:
        changes["palette"] = entry.palette
    elif changes.get("palette", base.palette) is None:  # no colours of its own
        labels = changes.get("labels", base.labels)
        # a preset's names get its colours in Architecture.colors(); a dataset named with other names, here
        if presets.palette_of(labels) is None and (preset := presets.palette_of(None, entry.dataset, n or len(labels))):
            changes["palette"] = preset
    return replace(base, **changes) if changes else base


def table_of(entry: ModelEntry) -> dict[str, Any]:
    """The entry's facts as registry keys (what :func:`parse` reads back), for writing a registry or a ref."""
    out: dict[str, Any] = {}
    if entry.labels is not None:
        out["labels"] = list(entry.labels)
    if entry.palette is not None:
        out["palette"] = [list(c) for c in entry.palette]
    if entry.ignore_index is not None:
        out["ignore_index"] = entry.ignore_index
    if entry.reduce_zero_label:
        out["reduce_zero_label"] = True
    if entry.input is not None:
        out["input"] = {k: v for k, v in entry.input.as_dict().items() if v is not None}
    return out
