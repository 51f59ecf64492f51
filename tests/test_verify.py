"""zoo verify: the comparison metrics (pure numpy) and end to end on real tiny Paddle models and their ONNX conversions.

Tolerances are stated where they are used; the defaults under test are labels >= 99.99% agreement and logits
allclose(rtol=1e-3, atol=1e-4 * max|reference|).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.models import ModelStore, model_store, models  # noqa: F401 - fixtures
from zoo.measure import verify
from zoo.store import cache
from zoo.synthetic import street_scene
from zoo.measure.verify import Tolerance, compare, compare_labels, compare_logits, locate

LABELS = ("road", "sidewalk", "building", "car")

# ---- labels -----------------------------------------------------------------------------------------------------


def _labels(h: int = 64, w: int = 80) -> np.ndarray:
    a = np.zeros((1, h, w), np.int32)
    a[:, :, w // 2 :] = 3  # left half road, right half car
    return a


def test_identical_labels_agree_fully():
    a = _labels()
    c = compare_labels(a, a.copy(), labels=LABELS)
    assert c.passed and c.kind == "labels"
    assert c.agreement == 1.0 and c.flipped == 0 and c.max_abs_diff == 0.0
    assert c.class_iou == {"road": 1.0, "car": 1.0}
    assert c.where is not None and c.where.bbox is None and c.where.regions == ()
    assert c.confusions == ()
    assert c.summary().startswith("PASS: all 5120 pixels agree")


def test_patch_of_flips_gives_exact_counts_iou_and_bbox():
    a = _labels()
    b = a.copy()
    b[0, 10:20, 30:50] = 2  # 200 px: 100 of road (x 30..39) and 100 of car (x 40..49) become building
    c = compare_labels(a, b, labels=LABELS)
    assert not c.passed
    assert (c.pixels, c.flipped) == (5120, 200)
    assert c.agreement == pytest.approx(1 - 200 / 5120, abs=0)
    assert c.max_abs_diff == 2.0  # |3 - 2| and |0 - 2|
    # road: 2560 paddle px, 2460 onnx px, 2460 shared -> IoU 2460/2560; building appears only in ONNX -> IoU 0
    assert c.class_iou == {"road": round(2460 / 2560, 6), "building": 0.0, "car": round(2460 / 2560, 6)}
    assert c.class_pixels["building"] == {"reference": 0, "candidate": 200, "both": 0}
    assert c.where.bbox == (30, 49, 10, 19)
    assert int(c.where.grid.sum()) == 200
    assert {tuple(r["cell"]) for r in c.where.regions} <= {(1, 3), (1, 4), (2, 3), (2, 4)}
    assert c.where.regions[0]["pixels"] == 60  # cell rows 8..15 hold rows 10..15 of the patch: 6 x 10 px
    assert {(p["reference"], p["candidate"], p["pixels"]) for p in c.confusions} == {
        ("road", "building", 100), ("car", "building", 100)}  # fmt: skip
    assert c.mask.shape == (64, 80) and int(c.mask.sum()) == 200
    line = c.summary()
    assert line.startswith("FAIL: 200 of 5120 pixels (3.91%) differ, in x 30..49, y 10..19")
    assert "class building IoU 0.000" in line


def test_int32_and_int64_labels_compare_equal():
    a = _labels()
    c = compare(a, a.astype(np.int64))  # PaddleSeg release/2.4 exports wrote int64
    assert c.kind == "labels" and c.passed and c.max_abs_diff == 0.0
    assert c.as_dict()["dtype"] == {"reference": "int32", "candidate": "int64"}
    assert compare(a[0], a[:, None].astype(np.int64)).passed  # [H, W] vs [N, 1, H, W]


def test_json_keys_name_what_ran_on_each_side():
    a = _labels()
    b = a.copy()
    b[0, 0, :10] = 3  # ten road pixels become car
    sides = ("paddle/fp32", "onnx/int8")
    parts = [compare(a, b, labels=LABELS, names=sides), compare(a, a, labels=LABELS, names=sides)]
    for doc in (parts[0].as_dict(), verify.combine(parts).as_dict()):
        assert doc["dtype"] == {"paddle/fp32": "int32", "onnx/int8": "int32"}
        assert doc["class_pixels"]["car"]["onnx/int8"] - doc["class_pixels"]["car"]["paddle/fp32"] == 10
        assert doc["confusions"] == [{"paddle/fp32": "road", "onnx/int8": "car", "pixels": 10}]
    mismatch = compare(a, a.astype(np.float32), names=sides)
    assert mismatch.kind == "mismatch" and "paddle/fp32 gives int32 labels, onnx/int8 float32" in mismatch.problem


def test_label_tolerance_allows_a_few_pixels():
    a = np.zeros((1, 100, 100), np.int64)
    b = a.copy()
    b[0, 0, 0] = 1  # 1 of 10000: agreement 99.99%, exactly the default bound
    assert compare_labels(a, b).passed
    b[0, 0, 1] = 1
    assert not compare_labels(a, b).passed
    assert compare_labels(a, b, Tolerance(min_agreement=0.999)).passed


def test_shape_or_kind_mismatch_fails_without_raising():
    a = _labels()
    c = compare(a, a[:, :32])
    assert c.kind == "mismatch" and not c.passed and "shapes differ" in c.problem
    c = compare(a, np.zeros((1, 4, 64, 80), np.float32))
    assert c.kind == "mismatch" and "labels" in c.problem
    json.dumps(c.as_dict(), allow_nan=False)


def test_locate_grid_counts_every_pixel():
    mask = np.zeros((30, 50), bool)
    mask[29, 49] = mask[0, 0] = True
    where = locate(mask)
    assert where.bbox == (0, 49, 0, 29)
    assert where.cell == (4, 7) and where.grid.shape == (8, 8)  # ceil(30 / 8), ceil(50 / 8)
    assert where.grid[0, 0] == 1 and where.grid[7, 7] == 1 and int(where.grid.sum()) == 2


# ---- logits -----------------------------------------------------------------------------------------------------


def _logits(scale: float = 1.0, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(1, 4, 32, 40)) * scale).astype(np.float32)


def test_logits_within_tolerance_pass():
    a = _logits()
    b = a * np.float32(1 + 1e-5)  # well inside rtol 1e-3
    c = compare_logits(a, b)
    assert c.passed and c.allclose and c.out_of_tolerance == 0
    assert c.max_abs_diff < 1e-4 and c.cosine == pytest.approx(1.0, abs=1e-9)
    assert c.atol == pytest.approx(1e-4 * float(np.abs(a).max()))
    assert c.where.bbox is None
    identical = compare_logits(a, a.copy())
    assert identical.max_abs_diff == 0.0 and identical.flipped == 0


def test_logits_outside_tolerance_fail_and_say_where():
    a = _logits()
    b = a.copy()
    b[0, 2, 5:9, 10:20] += 1.0  # a real disagreement in 40 pixels of one channel
    c = compare_logits(a, b, labels=LABELS)
    assert not c.passed and not c.allclose
    assert c.out_of_tolerance == 40
    assert c.max_abs_diff == pytest.approx(1.0, abs=1e-6)
    assert c.where.bbox == (10, 19, 5, 8)
    assert c.real_flips > 0 and c.ties == 0
    assert "40 of 5120 values outside" in c.summary() and "in x 10..19, y 5..8" in c.summary()


def test_tiny_logits_with_a_real_disagreement_fail():
    # a freshly initialised HRNet gives logits ~1e-12: a fixed atol of 1e-4 would pass anything
    a = _logits(scale=1e-12)
    b = a.copy()
    b[0, :, 0:8, 0:8] = -b[0, :, 0:8, 0:8]  # sign flipped in one corner: a real, large, relative error
    assert np.allclose(b, a, rtol=1e-3, atol=1e-4)  # the naive check would PASS
    c = compare_logits(a, b)
    assert not c.passed and c.out_of_tolerance > 0
    assert c.atol == pytest.approx(1e-4 * float(np.abs(a).max()), rel=1e-6) and c.atol < 1e-15
    assert c.where.bbox is not None and c.where.bbox[1] <= 7 and c.where.bbox[3] <= 7
    assert c.real_flips > 0
    # float32 rounding noise at that scale still passes
    assert compare_logits(a, a * np.float32(1 + 1e-6)).passed


def test_argmax_flips_at_ties_are_counted_as_ties():
    a = np.zeros((1, 3, 4, 4), np.float32)
    a[0, 0] = 1.0
    a[0, 1] = 1.0 - 1e-6  # class 1 trails class 0 by 1e-6: a tie at this tolerance
    b = a.copy()
    b[0, 1, 0, :2] = 1.0 + 1e-6  # ONNX puts class 1 ahead in 2 pixels: within tolerance
    b[0, 2, 3, 3] = 5.0  # and class 2 far ahead in one pixel: a real flip
    c = compare_logits(a, b)
    assert c.flipped == 3 and c.ties == 2 and c.real_flips == 1
    assert c.where.bbox == (3, 3, 3, 3)  # only the real flip is marked
    assert not c.passed


def test_nonfinite_logits_fail_and_stay_valid_json():
    a = _logits()
    b = a.copy()
    b[0, 0, 0, 0] = np.nan
    c = compare_logits(a, b)
    assert not c.passed and c.nonfinite == (0, 1) and c.max_abs_diff == float("inf")
    data = json.loads(json.dumps(c.as_dict(), allow_nan=False))
    assert data["max_abs_diff"] is None and data["nonfinite"] == {"reference": 0, "candidate": 1}


def test_combine_sums_images():
    a = _labels()
    b = a.copy()
    b[0, 0, :10] = 3
    parts = [compare_labels(a, a, labels=LABELS), compare_labels(a, b, labels=LABELS)]
    total = verify.combine(parts)
    assert (total.pixels, total.flipped, total.passed) == (10240, 10, False)
    assert total.class_pixels["road"] == {"reference": 5120, "candidate": 5110, "both": 5110}


# ---- end to end on real models ----------------------------------------------------------------------------------
# unet-tiny (the zoo-unet test plugin, seeded random weights) exported by tests/models.py and converted by zoo.make.convert.

NAME = "unet-tiny"


@pytest.fixture
def installed(models: ModelStore):
    """Install unet-tiny with an output op into this test's ZOO_HOME, Paddle model and its (cached) conversion."""

    def install(output_op: str = "argmax") -> Path:
        return models.install_converted(NAME, output_op=output_op)

    return install


def install_onnx(name: str, onnx_file: Path) -> None:
    """Point ``name``'s ONNX ref at a copy of ``onnx_file``."""
    from zoo.store import cache

    with cache.staging(cache.onnx_dir()) as stage:
        shutil.copy(onnx_file, stage / "model.onnx")
        folder = cache.commit_tree(stage, cache.onnx_dir(), {"name": name, "source": "test"})
    cache.set_ref(name, "onnx", {"key": folder.name, "file": "model.onnx"})


def altered_onnx(source: Path, dest: Path) -> Path:
    """The ONNX with one weight tensor changed: the last convolution's filter for class 1, scaled and shifted."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    last_conv = [n.input[1] for n in model.graph.node if n.op_type == "Conv"][-1]
    # paddle2onnx stores weights as initializers or as Constant nodes, depending on version and optimizer
    tensors = [t for t in model.graph.initializer if t.name == last_conv] + [
        a.t for n in model.graph.node if n.op_type == "Constant" and n.output[0] == last_conv
        for a in n.attribute if a.name == "value"
    ]  # fmt: skip
    target = tensors[0]
    w = numpy_helper.to_array(target).copy()
    w[1] = w[1] * 3.0 + 0.05
    target.CopyFrom(numpy_helper.from_array(w, target.name))
    onnx.save(model, str(dest))
    return dest


def test_argmax_model_passes(installed):
    installed("argmax")
    result = verify.verify_model(NAME, size=(48, 64), count=2, threads=1)
    assert result.passed, result.summary()
    assert result.overall.kind == "labels" and len(result.images) == 2
    assert result.overall.pixels == 2 * 48 * 64
    assert result.overall.agreement == 1.0 and result.overall.max_abs_diff == 0.0  # exact: same class ids
    data = result.as_dict()
    assert data["images"][0]["size"] == [48, 64] and data["output_op"] == "argmax" and data["weights"] == "random"
    assert data["summary"].startswith("PASS") and data["backends"]["paddle/fp32"]["threads"] == 1
    assert (data["reference"], data["candidate"]) == ("paddle/fp32", "onnx/fp32")  # the specs' reference, default
    assert data["models"]["onnx/fp32"]["sha256"] == cache.sha256_file(Path(data["models"]["onnx/fp32"]["path"]))
    assert {m["device"] for m in data["models"].values()} == {"cpu"}
    json.dumps(data, allow_nan=False)


def test_logits_model_passes(installed):
    installed("none")
    result = verify.verify_model(NAME, size=(40, 56), count=1, threads=1)
    assert result.passed, result.summary()
    c = result.overall
    assert c.kind == "logits" and c.allclose and c.out_of_tolerance == 0 and c.real_flips == 0
    assert c.cosine > 0.999999
    assert c.atol == pytest.approx(1e-4 * c.max_abs_reference)  # the default atol_rel


def test_logits_model_with_altered_weight_fails(installed, tmp_path: Path):
    source = installed("none")
    install_onnx(NAME, altered_onnx(source, tmp_path / "bad.onnx"))
    result = verify.verify_model(NAME, size=(40, 56), count=1, threads=1, convert=False)
    assert not result.passed
    c = result.overall
    assert c.out_of_tolerance > 0 and c.real_flips > 0 and c.class_iou["road"] < 1.0
    assert result.images[0].comparison.where.bbox is not None
    assert "values outside" in result.summary() and "in x " in result.summary()


def test_given_images_are_used(installed, tmp_path: Path):
    import cv2

    installed("argmax")
    path = tmp_path / "street.png"
    cv2.imwrite(str(path), street_scene(36, 52, seed=7)[:, :, ::-1])
    result = verify.verify_model(NAME, images=[path], threads=1)
    assert result.passed and result.images[0].image == str(path) and result.images[0].size == (36, 52)


def test_missing_onnx_without_convert_says_what_to_run(models: ModelStore):
    from zoo.errors import NotCachedError

    models.install(NAME)
    with pytest.raises(NotCachedError, match=f"zoo convert {NAME}"):
        verify.verify_model(NAME, size=(16, 16), count=1, convert=False)


def test_onnx_of_an_older_paddle_model_is_not_compared(installed, models: ModelStore):
    from zoo.errors import NotCachedError

    installed("argmax")
    stale = {k: v for k, v in cache.get_ref(NAME)["onnx"].items() if k not in ("from", "updated")}
    models.install(NAME, output_op="argmax", seed=1)  # re-exported with other weights since the conversion
    # the re-export dropped the conversion of the old model (issue 12 item 9)
    with pytest.raises(NotCachedError, match=f"(?i)no onnx model in the cache; run 'zoo convert {NAME}'"):
        verify.verify_model(NAME, size=(16, 16), count=1, convert=False)
    # a ref that does not say what it was converted from (written by hand, or by an older zoo): the file's own
    # metadata still tells, and verify refuses to compare two different networks
    cache.set_ref(NAME, "onnx", stale)
    with pytest.raises(NotCachedError, match="converted from another Paddle model"):
        verify.verify_model(NAME, size=(16, 16), count=1, convert=False)
    result = verify.verify_model(NAME, size=(16, 16), count=1)  # converts the current one first
    from zoo.make.convert import read_metadata

    paddle_dir, onnx_file = (Path(result.models[side]["path"]) for side in result.pair)
    assert result.passed and read_metadata(onnx_file)["paddle_key"] == paddle_dir.name


def test_cli_altered_weight_fails_with_how_much_where_report_and_json(installed, tmp_path: Path):
    source = installed("argmax")
    install_onnx(NAME, altered_onnx(source, tmp_path / "bad.onnx"))
    report = tmp_path / "report"
    proc = run_zoo("verify", NAME, "--size", "48x64", "--count", "1", "--threads", "1",
                   "--json", "--report", str(report))  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)  # exactly one JSON object: anything else on stdout fails here
    assert isinstance(data, dict) and data["passed"] is False and data["kind"] == "labels"
    image = data["images"][0]
    assert image["flipped"] > 0 and image["agreement"] < 0.9999
    assert image["where"]["bbox"] is not None and image["where"]["regions"]
    assert "FAIL" in proc.stderr and "differ, in x" in proc.stderr

    assert json.loads((report / "verify.json").read_text())["images"][0]["flipped"] == image["flipped"]
    import cv2

    png = cv2.imread(image["png"])[:, :, ::-1]
    assert png.shape[:2] == (48, 64)
    magenta = int(np.all(png == verify.MARK, axis=2).sum())
    assert 0 < magenta <= image["flipped"]  # the box, drawn just outside the bbox, may cover some at the edges
    assert np.all(png == verify.BOX, axis=2).any()

    human = run_zoo("verify", NAME, "--size", "48x64", "--count", "1", "--threads", "1")
    assert human.returncode == 1
    first = human.stdout.strip().splitlines()[0]
    assert first.startswith(f"FAIL: {image['flipped']} of 3072 pixels") and "differ, in x" in first


def test_cli_pass_exits_0_with_one_json_object(installed):
    installed("argmax")
    proc = run_zoo("verify", NAME, "--size", "32x48", "--count", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["passed"] is True and data["overall"]["flipped"] == 0 and data["report"] is None


def test_one_backend_against_itself_at_another_precision_is_a_pair(installed):
    """Sides are named backend/precision: onnx/fp32 vs onnx/fp32 is no comparison, the same backend at two precisions
    is one (its keys differ)."""
    from zoo.errors import BackendError

    installed("argmax")
    with pytest.raises(BackendError, match="two different backends or precisions"):
        verify.verify_model(NAME, backends=("onnx", "onnx"), size=(16, 16), count=1)
