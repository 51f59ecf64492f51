"""A model's own facts over its architecture's: deploy.yaml as PaddleSeg reads it, registry entries' labels/palette/
input/eval conventions, and the registry writer ``zoo add`` uses. Expected values come from PaddleSeg's transforms
(run as the oracle where the preprocessing is numeric) and from the files the tests write."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import DeployError, RegistryError
from zoo.runners import deploy
from zoo.formats.program import Signature
from zoo.registry import entries, model_facts, presets, writer
from zoo.registry.spec import Architecture, InputSpec


def _sig(shape=(-1, 3, -1, -1)) -> Signature:
    return Signature("x", tuple(shape), "argmax", "int32", 4)


def test_deploy_transforms_become_an_input_spec():
    spec = deploy.input_spec({"transforms": [
        {"type": "Resize", "target_size": [512, 256], "keep_ratio": True},
        {"type": "Padding", "target_size": [512, 512], "im_padding_value": 0},
        {"type": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    ]}, _sig())  # fmt: skip
    assert (spec.size_policy, spec.size, spec.keep_ratio, spec.pad) == ("resize", (256, 512), True, (512, 512))
    assert spec.pad_value == (0.0, 0.0, 0.0) and spec.mean == (0.485, 0.456, 0.406) and spec.scale == 1 / 255
    # PaddleX's NormalizeImage with is_scale false: no / 255; one mean value stands for three channels
    other = deploy.input_spec({"transforms": [{"type": "NormalizeImage", "mean": [127.5], "std": [127.5],
                                               "is_scale": False}], "to_rgb": False})  # fmt: skip
    assert other.scale == 1.0 and other.mean == (127.5,) * 3 and other.color == "BGR"


def test_a_fixed_program_shape_decides_the_size():
    keep = deploy.input_spec({"transforms": [{"type": "Normalize"}]}, _sig((1, 3, 128, 256)))
    assert (keep.size_policy, keep.size) == ("resize", (128, 256))
    long = deploy.input_spec({"transforms": [{"type": "ResizeByLong", "long_size": 256}, {"type": "Normalize"}]},
                             _sig((1, 3, 256, 256)))  # fmt: skip
    assert (long.size_policy, long.size, long.pad) == ("long", (256, 256), (256, 256))
    with pytest.raises(DeployError, match="Resize goes to"):
        deploy.input_spec({"transforms": [{"type": "Resize", "target_size": [100, 100]}]}, _sig((1, 3, 128, 256)))


def test_unknown_transforms_are_refused():
    with pytest.raises(DeployError, match="'RandomBlur' is not one zoo reads"):
        deploy.input_spec({"transforms": [{"type": "RandomBlur"}]})
    with pytest.raises(DeployError, match="interp"):
        deploy.input_spec({"transforms": [{"type": "Resize", "target_size": [9, 9], "interp": "NEAREST"}]})


@pytest.mark.paddleseg
@pytest.mark.parametrize("transforms", [
    [{"type": "Resize", "target_size": [96, 64]}, {"type": "Normalize", "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.3, 0.4]}],
    [{"type": "Resize", "target_size": [80, 80], "keep_ratio": True}, {"type": "Padding", "target_size": [80, 80]},
     {"type": "Normalize"}],
    [{"type": "ResizeByShort", "short_size": 40}, {"type": "Normalize"}, {"type": "Padding", "target_size": [96, 96],
                                                                          "im_padding_value": 0.25}],
])  # fmt: skip
def test_preprocessing_equals_paddleseg_compose(transforms, tmp_path):
    pytest.importorskip("paddleseg.transforms")
    import cv2
    import paddleseg.transforms as T
    from paddleseg.cvlibs import manager

    from zoo.images import read_image
    from zoo.runners.runtime import preprocess
    from zoo.synthetic import street_scene

    path = tmp_path / "x.png"
    cv2.imwrite(str(path), street_scene(70, 53, seed=4)[..., ::-1])
    ops = [manager.TRANSFORMS[t.pop("type")](**t) for t in copy.deepcopy(transforms)]
    expected = T.Compose(ops)({"img": str(path)})["img"][None]
    got = preprocess(read_image(path), deploy.input_spec({"transforms": transforms}))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)  # float32 rounding of the padding value only


def test_restore_crops_padding_and_resizes_ids_like_paddle():
    spec = InputSpec(size_policy="resize", size=(8, 8), keep_ratio=True, pad=(8, 8))
    out = np.arange(64, dtype=np.int32).reshape(1, 8, 8)
    back = deploy.restore(out, spec, (4, 8))  # a 4x8 image was resized to 4x8 and padded to 8x8
    np.testing.assert_array_equal(back, out[:, :4, :8])
    up = deploy.restore(np.array([[[0, 1], [2, 3]]], np.int32), InputSpec(size_policy="resize", size=(2, 2)), (3, 3))
    np.testing.assert_array_equal(up[0], [[0, 0, 1], [0, 0, 1], [2, 2, 3]])  # floor(k * 2/3), Paddle's nearest


def _entry(**facts) -> entries.ModelEntry:
    return entries.ModelEntry("m", "fcn", **facts)


def test_the_entry_overrides_the_plugin():
    plugin = Architecture("fcn", "x", input=InputSpec(mean=(0.1, 0.1, 0.1)))
    same = model_facts.architecture_for(_entry(num_classes=19), plugin, 19)
    assert same is plugin  # nothing of its own: the plugin's defaults
    own = model_facts.architecture_for(_entry(num_classes=2, labels=("bg", "crack"), palette=((0, 0, 0), (9, 9, 9)),
                                              input=InputSpec(mean=(0.2, 0.3, 0.4))), plugin, 2)  # fmt: skip
    assert own.labels == ("bg", "crack") and own.colors(2)[:2] == ((0, 0, 0), (9, 9, 9))
    assert own.input.mean == (0.2, 0.3, 0.4) and own.builder == plugin.builder
    # another class count and no labels of its own: never the plugin's Cityscapes names
    numbered = model_facts.architecture_for(_entry(num_classes=3), plugin, 3)
    assert numbered.labels == ("class_0", "class_1", "class_2") and "road" not in numbered.labels
    bare = model_facts.architecture_for(entries.ModelEntry("m", None, num_classes=2), None, 2)
    assert bare.name == model_facts.PROGRAM_ONLY and bare.labels == ("class_0", "class_1") and bare.builder is None


def test_presets_are_complete():
    for name in ("cityscapes", "ade20k", "voc", "camvid"):
        assert len(presets.LABELS[name]) == len(presets.PALETTES[name])
    assert len(presets.LABELS["ade20k"]) == 150 and presets.LABELS["ade20k"][:3] == ("wall", "building", "sky")
    assert presets.PALETTES["voc"][:3] == ((0, 0, 0), (128, 0, 0), (0, 128, 0))  # VOC's own colour map
    assert presets.PALETTES["cityscapes"][0] == (128, 64, 128)  # road


def test_registry_keys_parse_and_round_trip(tmp_path: Path):
    path = tmp_path / "r.toml"
    path.write_text("schema = 1  # mine\n\n# keep this comment\n[models.other]\narchitecture = \"fcn\"\n"
                    "[models.other.weights]\nurls = [\"u\"]\n")  # fmt: skip
    entry = entries.ModelEntry("my.net", None, num_classes=3, labels=("a", "b", "c"), palette=presets.PALETTES["voc"],
                               ignore_index=0, reduce_zero_label=True,
                               input=InputSpec(size_policy="resize", size=(64, 96), mean=(0.4, 0.5, 0.6)))  # fmt: skip
    keys = {"summary": "s", "num_classes": 3, **model_facts.table_of(entry)}
    writer.write_entry(path, "my.net", writer.table_text("my.net", keys, {"inference": {"urls": ["/x"]}}))
    text = path.read_text()
    assert "# keep this comment" in text and "schema = 1  # mine" in text
    got = {e.name: e for e in entries.parse_file(path)[0]}
    mine = got["my.net"]
    assert mine.architecture is None and mine.labels == entry.labels and mine.palette == entry.palette[:21]
    assert mine.input == entry.input and mine.ignore_index == 0 and mine.reduce_zero_label is True
    # replacing it keeps one table; an invalid table is never written
    writer.write_entry(path, "my.net", writer.table_text("my.net", {"summary": "v2"}, {"inference": {"urls": ["/y"]}}))
    assert path.read_text().count('[models."my.net"]') == 1 and "other" in path.read_text()
    before = path.read_text()
    with pytest.raises(RegistryError, match="ignore_index"):
        writer.write_entry(path, "bad", writer.table_text("bad", {"ignore_index": -3}, {"inference": {"urls": ["/z"]}}))
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["r.toml"]


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("output_op", ["argmax", "softmax", "none"])
def test_program_signature_reads_how_an_export_ends(models, output_op, legacy):
    from zoo.formats.program import signature
    from zoo.store import cache

    folder = models.get("unet-tiny", output_op=output_op, legacy=legacy)  # 4 classes, dynamic [N, 3, H, W] input
    sig = signature(cache.program_file(folder))
    assert sig.output_op == output_op and sig.num_classes == 4 and sig.input_name == "x"
    assert sig.input_shape[1] == 3 and sig.fixed_size is None
    assert sig.output_dtype == ("int32" if output_op == "argmax" else "float32")
