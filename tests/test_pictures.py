"""Pictures people read (issue 26): Cityscapes models draw in Cityscapes' official colours unless told otherwise
(``palette = "paddleseg"``, ``zoo run --palette``), and ``zoo run``'s overlay carries a legend of the classes present.

Expected colours come from the datasets' own tables, typed here from them (cityscapesScripts ``helpers/labels.py``,
train ids 0-18; PaddleSeg's ``get_color_map_list``), not from zoo's presets. Models are real tiny exports with seeded
random weights (tests/models.py): unet-tiny, and the built-in fcn for a registry entry as zoo ships them. JPEG
comparisons allow 12 levels per channel (quality 90 on flat swatches and a blend).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.models import ModelStore, model_store, models  # noqa: F401 - fixtures
from tests.test_images import street, write
from zoo.images import read_image
from zoo.registry import catalog, entries, model_facts
from zoo.registry.spec import Architecture

# cityscapesScripts helpers/labels.py: (name, trainId, color) for trainIds 0-18
CITYSCAPES_OFFICIAL = {
    "road": (128, 64, 128), "sidewalk": (244, 35, 232), "building": (70, 70, 70), "wall": (102, 102, 156),
    "fence": (190, 153, 153), "pole": (153, 153, 153), "traffic light": (250, 170, 30), "traffic sign": (220, 220, 0),
    "vegetation": (107, 142, 35), "terrain": (152, 251, 152), "sky": (70, 130, 180), "person": (220, 20, 60),
    "rider": (255, 0, 0), "car": (0, 0, 142), "truck": (0, 0, 70), "bus": (0, 60, 100), "train": (0, 80, 100),
    "motorcycle": (0, 0, 230), "bicycle": (119, 11, 32),
}  # fmt: skip
OFFICIAL = np.asarray(list(CITYSCAPES_OFFICIAL.values()), np.uint8)


def paddleseg_pseudo(n: int) -> np.ndarray:
    """PaddleSeg's get_color_map_list(n + 1)[1:], as paddleseg/utils/visualize.py writes it (class c: colour c + 1)."""
    color_map = [0] * (3 * (n + 1))
    for i in range(n + 1):
        j, lab = 0, i
        while lab:
            color_map[i * 3] |= ((lab >> 0) & 1) << (7 - j)
            color_map[i * 3 + 1] |= ((lab >> 1) & 1) << (7 - j)
            color_map[i * 3 + 2] |= ((lab >> 2) & 1) << (7 - j)
            j += 1
            lab >>= 3
    return np.asarray(color_map[3:], np.uint8).reshape(-1, 3)


def decoded(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]


def near(picture: np.ndarray, colour, tol: int = 12) -> int:
    """How many pixels are within ``tol`` levels of ``colour`` on every channel."""
    return int((np.abs(picture.astype(np.int16) - np.asarray(colour, np.int16)) <= tol).all(axis=2).sum())


# ---- which colours a model draws with --------------------------------------------------------------------------------


def test_builtin_cityscapes_models_default_to_the_official_colours():
    known = catalog.current()
    for name in ("bisenet", "danet", "deeplabv3", "deeplabv3p", "fcn"):
        handle = known.resolve(name)
        assert handle.labels == tuple(CITYSCAPES_OFFICIAL)
        assert handle.palette == tuple(CITYSCAPES_OFFICIAL.values()), name
    # the plugins themselves (a model file carrying only `zoo.architecture`) draw the same
    assert known.architectures["fcn"].colors()[:19] == tuple(CITYSCAPES_OFFICIAL.values())


def _entry(**facts) -> entries.ModelEntry:
    return entries.ModelEntry("m", "fcn", **facts)


def test_an_explicit_palette_wins_and_paddleseg_is_a_preset(tmp_path, monkeypatch):
    registry = tmp_path / "r.toml"
    registry.write_text(
        "schema = 1\n"
        '[models.pseudo-city]\narchitecture = "fcn"\ndataset = "cityscapes"\nnum_classes = 19\npalette = "paddleseg"\n'
        '[models.pseudo-city.weights]\nurls = ["http://127.0.0.1:9/x.pdparams"]\n'
        '[models.mine-city]\narchitecture = "fcn"\ndataset = "cityscapes"\nnum_classes = 19\n'
        "palette = [[1, 2, 3], [4, 5, 6]]\n"
        '[models.mine-city.weights]\nurls = ["http://127.0.0.1:9/x.pdparams"]\n'
    )  # fmt: skip
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    pseudo = catalog.resolve("pseudo-city")
    assert np.array_equal(np.asarray(pseudo.palette, np.uint8), paddleseg_pseudo(19))
    mine = catalog.resolve("mine-city")
    assert mine.palette[:2] == ((1, 2, 3), (4, 5, 6)) and mine.palette[2] != CITYSCAPES_OFFICIAL["building"]
    # zoo info --json says what the model draws with
    info = json.loads(run_zoo("info", "pseudo-city", "--json", check=True).stdout)
    assert np.array_equal(np.asarray(info["palette"], np.uint8), paddleseg_pseudo(19))
    info = json.loads(run_zoo("info", "fcn", "--json", check=True).stdout)
    assert info["palette"] == [list(c) for c in CITYSCAPES_OFFICIAL.values()]


def test_the_dataset_gives_the_colours_when_the_class_count_is_its():
    names = tuple(f"my {n}" for n in CITYSCAPES_OFFICIAL)  # Cityscapes, under names of its own
    own_names = model_facts.architecture_for(_entry(num_classes=19, labels=names, dataset="cityscapes"), None, 19)
    assert own_names.colors(19)[:19] == tuple(CITYSCAPES_OFFICIAL.values())
    # VOC's colour map is its own (background black, aeroplane dark red), not PaddleSeg's shifted one
    voc = model_facts.architecture_for(_entry(num_classes=21, labels=tuple(f"c{i}" for i in range(21)),
                                              dataset="voc"), None, 21)  # fmt: skip
    assert voc.colors(21)[:3] == ((0, 0, 0), (128, 0, 0), (0, 128, 0))
    # another class count: not the dataset's colours (they would name classes the model does not have)
    other = model_facts.architecture_for(_entry(num_classes=20, dataset="cityscapes"), Architecture("fcn", "x"), 20)
    assert np.array_equal(np.asarray(other.colors(20)[:20], np.uint8), paddleseg_pseudo(20))
    # no dataset, no preset names: PaddleSeg's pseudo-colours, as before
    plain = model_facts.architecture_for(_entry(num_classes=3, labels=("a", "b", "c")), None, 3)
    assert np.array_equal(np.asarray(plain.colors(3)[:3], np.uint8), paddleseg_pseudo(3))


# ---- zoo run's files -------------------------------------------------------------------------------------------------


def test_zoo_run_draws_a_cityscapes_model_in_cityscapes_colours_and_paddleseg_on_request(models: ModelStore,
                                                                                         tmp_path):  # fmt: skip
    from zoo.make.convert import read_metadata

    onnx = models.install_converted("fcn")
    assert read_metadata(onnx)["palette"] == [list(c) for c in CITYSCAPES_OFFICIAL.values()]  # stamped at conversion
    image = write(tmp_path / "s.png", street(96, 160))
    run_zoo("run", "fcn", str(image), "--out", str(tmp_path / "city"), "--threads", "1", check=True)
    run_zoo("run", "fcn", str(image), "--out", str(tmp_path / "pseudo"), "--threads", "1", "--palette", "paddleseg",
            "--no-legend", check=True)  # fmt: skip
    labels = cv2.imread(str(tmp_path / "city" / "s.labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.max() < 19
    np.testing.assert_array_equal(decoded(tmp_path / "city" / "s.color.png"), OFFICIAL[labels])
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "pseudo" / "s.labels.png"), cv2.IMREAD_UNCHANGED), labels)
    np.testing.assert_array_equal(decoded(tmp_path / "pseudo" / "s.color.png"), paddleseg_pseudo(19)[labels])
    # --no-legend: the overlay is the image's size; with the legend (the default) it is taller
    assert decoded(tmp_path / "pseudo" / "s.overlay.jpg").shape == (96, 160, 3)
    assert decoded(tmp_path / "city" / "s.overlay.jpg").shape[0] > 96
    bad = run_zoo("run", "fcn", str(image), "--out", str(tmp_path / "bad"), "--palette", "nope")
    assert bad.returncode != 0 and "--palette nope: no such file and not a preset" in bad.stderr
    assert "paddleseg" in bad.stderr and not (tmp_path / "bad").exists()


def _present_and_absent(labels: np.ndarray, colours: np.ndarray) -> tuple[list[int], list[int]]:
    """Class ids present, and absent ids whose colour is saturated and far from every present one (so neither text
    anti-aliasing nor a present swatch's JPEG ringing can look like it)."""
    present = [int(c) for c in np.unique(labels)]
    absent = []
    for cid in range(len(colours)):
        c = colours[cid].astype(np.int16)
        if cid in present or int(c.max()) - int(c.min()) < 60:
            continue
        if all(np.abs(c - colours[p].astype(np.int16)).max() > 40 for p in present):
            absent.append(cid)
    return present, absent


def test_zoo_run_overlay_has_a_legend_of_the_classes_present(models: ModelStore, tmp_path):
    models.install_converted("fcn")
    rgb = street(96, 160)
    image = write(tmp_path / "s.png", rgb)
    out = tmp_path / "out"
    run_zoo("run", "fcn", str(image), "--out", str(out), "--threads", "1", check=True)
    labels = cv2.imread(str(out / "s.labels.png"), cv2.IMREAD_UNCHANGED)
    overlay = decoded(out / "s.overlay.jpg")
    assert overlay.shape[1] == 160 and overlay.shape[0] >= 96 + 22  # at least one legend row below the picture
    blended = np.round(0.5 * rgb.astype(np.float64) + 0.5 * OFFICIAL[labels]).astype(np.int16)
    assert np.abs(overlay[:96].astype(np.int16) - blended).mean() < 4  # the picture itself, unchanged
    strip = overlay[96:]
    assert near(strip, (255, 255, 255), 8) > strip.shape[0] * strip.shape[1] // 2  # a white strip
    present, absent = _present_and_absent(labels, OFFICIAL)
    assert present and absent
    for cid in present:
        assert near(strip, OFFICIAL[cid]) >= 60, f"no swatch of {list(CITYSCAPES_OFFICIAL)[cid]}"  # 13x13 inside
    for cid in absent:
        assert near(strip, OFFICIAL[cid]) < 20, f"a swatch of absent {list(CITYSCAPES_OFFICIAL)[cid]}"
    summary = json.loads((out / "s.json").read_text())
    assert set(summary["classes"]) == {list(CITYSCAPES_OFFICIAL)[c] for c in present}


def test_api_save_writes_zoo_runs_files_byte_for_byte(models: ModelStore, tmp_path):
    import zoo

    models.install_converted("unet-tiny")
    image = write(tmp_path / "s.png", street())
    run_zoo("run", "unet-tiny", str(image), "--out", str(tmp_path / "cli"), "--threads", "1", check=True)
    run_zoo("run", "unet-tiny", str(image), "--out", str(tmp_path / "cli-plain"), "--threads", "1", "--no-legend",
            "--palette", "paddleseg", check=True)  # fmt: skip
    seg = zoo.load("unet-tiny", threads=1)(str(image))
    files = seg.save(tmp_path / "api")
    plain = seg.save(tmp_path / "api-plain", legend=False, palette="paddleseg")
    assert sorted(files) == sorted(plain) == ["color", "labels", "overlay"]
    for kind, path in files.items():
        assert path.name == f"s.{kind}.{'jpg' if kind == 'overlay' else 'png'}"
        assert path.read_bytes() == (tmp_path / "cli" / path.name).read_bytes(), kind
        assert plain[kind].read_bytes() == (tmp_path / "cli-plain" / path.name).read_bytes(), kind
    # the colour mask stays a map (the label map's size), whatever the legend does
    assert decoded(files["color"]).shape[:2] == read_image(image).shape[:2] == seg.labels.shape
    np.testing.assert_array_equal(decoded(plain["color"]), paddleseg_pseudo(4)[seg.labels])
    # the legend rule is the overlay's in memory too
    assert seg.overlay(legend=True).shape[0] == decoded(files["overlay"]).shape[0] > seg.labels.shape[0]


@pytest.mark.parametrize("palette", ["paddleseg", [[9, 9, 9]]])
def test_api_palette_keyword(models: ModelStore, palette):
    import zoo

    models.install_converted("unet-tiny")
    seg = zoo.load("unet-tiny", threads=1)(street())
    expected = paddleseg_pseudo(4) if palette == "paddleseg" else np.vstack([[9, 9, 9], paddleseg_pseudo(4)[1:]])
    np.testing.assert_array_equal(seg.colorize(palette=palette), expected.astype(np.uint8)[seg.labels])
    np.testing.assert_array_equal(seg.colorize(), np.asarray(seg.colors, np.uint8)[seg.labels])  # the model's own
