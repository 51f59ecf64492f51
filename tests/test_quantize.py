"""zoo.make.quantize and `zoo quantize`: int8 (static QDQ) and fp16 variants of real exported models.

Expected values come from outside the code under test: the graph itself (onnx), a bare onnxruntime session on the
float32 model, hashlib over the calibration tensors, zoo.measure.verify's comparison of label maps.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from tests.conftest import run_zoo
from zoo.make import quantize
from zoo.store import cache
from zoo.errors import NotCachedError, QuantizationError
from zoo.runners.runtime import preprocess
from zoo.registry.spec import InputSpec
from zoo.synthetic import street_scene, write_street_png
from zoo.measure.verify import Tolerance, compare_labels

SIZE = (64, 128)


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = _session(path)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _scenes(count: int, seed: int = 100, size: tuple[int, int] = SIZE) -> list[np.ndarray]:
    """Synthetic street scenes preprocessed with the unet plugin's own input spec (ImageNet mean/std)."""
    from zoo.registry.plugins import get_architecture

    spec = get_architecture("unet").input
    assert spec != InputSpec()  # so that a spec mix-up shows in the hashes below
    return [preprocess(street_scene(*size, seed=seed + i), spec) for i in range(count)]


@pytest.fixture
def unet(models) -> Path:
    """The float32 ONNX conversion of the tiny test network (paddle2onnx output, weights as Constant nodes)."""
    return models.install_converted("unet-tiny")


def _weight_producers(model: onnx.ModelProto) -> list[str]:
    """For each Conv: what makes its weight input — 'initializer', or the op type of the node that outputs it."""
    inits = {t.name for t in model.graph.initializer}
    makers = {out: node.op_type for node in model.graph.node for out in node.output}
    return ["initializer" if n.input[1] in inits else makers.get(n.input[1], "?")
            for n in model.graph.node if n.op_type == "Conv"]  # fmt: skip


def test_constants_become_initializers_and_outputs_do_not_change(unet, tmp_path):
    model = onnx.load(str(unet))
    before = _weight_producers(model)
    assert before and "Constant" in before, "paddle2onnx 2.1 is expected to write Conv weights as Constant nodes"
    moved = quantize.constants_to_initializers(model)
    assert moved > 0
    assert set(_weight_producers(model)) == {"initializer"}
    assert not [n for n in model.graph.node if n.op_type == "Constant"]
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "moved.onnx"))
    x = _scenes(1)[0]
    np.testing.assert_array_equal(_run(tmp_path / "moved.onnx", x), _run(unet, x))


def test_int8_variant_is_qdq_with_integer_weights(unet, tmp_path):
    out = tmp_path / "int8.onnx"
    prov = quantize.quantize_onnx(unet, out, precision="int8", calibration=_scenes(4), method="minmax")
    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    inits = {t.name: t for t in model.graph.initializer}
    makers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs
    for conv in convs:  # every Conv reads a dequantized int8 weight and a dequantized uint8 activation
        weight_dq = makers[conv.input[1]]
        assert weight_dq.op_type == "DequantizeLinear"
        assert inits[weight_dq.input[0]].data_type == TensorProto.INT8
        act_dq = makers[conv.input[0]]
        assert act_dq.op_type == "DequantizeLinear"
        assert makers[act_dq.input[0]].op_type == "QuantizeLinear"
        assert inits[act_dq.input[2]].data_type == TensorProto.UINT8
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["zoo.precision"] == "int8" and meta["zoo.architecture"] == "unet"  # source metadata kept
    assert prov["activation_type"] == "uint8" and prov["weight_type"] == "int8" and prov["format"] == "QDQ"
    assert prov["reduce_range"] is (not quantize.has_vnni())
    assert prov["sha256"] == cache.sha256_file(out) and prov["source_sha256"] == cache.sha256_file(unet)
    # ORT runs it with integer kernels: its optimised graph holds QLinearConv, not float Conv on dequantized data
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    optimized = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert "QLinearConv" in optimized and "Conv" not in optimized


def test_calibration_hash_covers_exactly_the_tensors_fed(unet, tmp_path):
    tensors = _scenes(3)
    expected = hashlib.sha256()
    for x in tensors:
        expected.update(str(x.shape).encode())
        expected.update(x.tobytes())
    prov = quantize.quantize_onnx(unet, tmp_path / "a.onnx", precision="int8", calibration=tensors)
    assert prov["calibration"] == {"sha256": "sha256:" + expected.hexdigest(), "count": 3, "shapes": [[1, 3, *SIZE]]}
    # the same scenes as PNG files in a folder (lossless) go through read_image + preprocess: same tensors, same hash
    folder = tmp_path / "calib"
    folder.mkdir()
    for i in range(3):
        write_street_png(folder / f"{i:02d}.png", *SIZE, seed=100 + i)
    from_folder = quantize.quantize_onnx(unet, tmp_path / "b.onnx", precision="int8", calibration=folder)
    assert from_folder["calibration"]["sha256"] == prov["calibration"]["sha256"]
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_same_inputs_give_byte_identical_variants(unet, tmp_path):
    for precision in ("int8", "fp16"):
        a, b = tmp_path / f"{precision}-a.onnx", tmp_path / f"{precision}-b.onnx"
        for dst in (a, b):
            quantize.quantize_onnx(unet, dst, precision=precision, calibration=_scenes(2), per_channel=True)
        assert a.read_bytes() == b.read_bytes(), precision
    # and a different calibration set gives a different model (the check above can fail)
    quantize.quantize_onnx(unet, tmp_path / "other.onnx", precision="int8", calibration=_scenes(2, seed=7))
    assert (tmp_path / "other.onnx").read_bytes() != (tmp_path / "int8-a.onnx").read_bytes()


def test_fp16_variant_has_float16_weights_and_float32_io(unet, tmp_path):
    out = tmp_path / "fp16.onnx"
    prov = quantize.quantize_onnx(unet, out, precision="fp16")
    model = onnx.load(str(out))
    types = {t.data_type for t in model.graph.initializer if len(t.dims) == 4}  # conv kernels
    assert types == {TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # keep_io_types
    assert prov["tool"].startswith("onnxconverter_common") and "onnxconverter-common" in prov["versions"]
    x = _scenes(1)[0]
    result = compare_labels(_run(unet, x), _run(out, x), Tolerance(min_agreement=0.99))
    assert result.passed, result.agreement


def test_agreement_check_fails_a_badly_calibrated_int8_variant(unet, tmp_path):
    """Calibrated on flat grey frames, activation ranges are far too narrow: the street scenes clip, labels flip."""
    flat = [np.full((1, 3, *SIZE), 0.0, np.float32)]
    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    quantize.quantize_onnx(unet, good, precision="int8", calibration=_scenes(4))
    quantize.quantize_onnx(unet, bad, precision="int8", calibration=flat)
    tolerance = Tolerance(min_agreement=0.995)
    xs = _scenes(2, seed=500)
    reference = [_run(unet, x) for x in xs]
    bad_checks = [compare_labels(r, _run(bad, x), tolerance) for r, x in zip(reference, xs)]
    good_checks = [compare_labels(r, _run(good, x), tolerance) for r, x in zip(reference, xs)]
    assert not any(c.passed for c in bad_checks), [c.agreement for c in bad_checks]
    assert min(c.agreement for c in good_checks) > max(c.agreement for c in bad_checks)


def test_bad_settings_are_one_line_errors(unet, tmp_path):
    with pytest.raises(QuantizationError, match="calibration"):
        quantize.quantize_onnx(unet, tmp_path / "x.onnx", precision="int8")
    with pytest.raises(QuantizationError, match="unknown precision"):
        quantize.quantize_onnx(unet, tmp_path / "x.onnx", precision="int4", calibration=_scenes(1))
    with pytest.raises(QuantizationError, match="not an op type"):
        quantize.quantize_onnx(unet, tmp_path / "x.onnx", calibration=_scenes(1), exclude=["Convolution"])
    with pytest.raises(QuantizationError, match="no images"):
        quantize.quantize_onnx(unet, tmp_path / "x.onnx", calibration=tmp_path)
    assert not (tmp_path / "x.onnx").exists()


def test_cli_stores_the_variant_beside_the_float_model(unet, tmp_path):
    proc = run_zoo("quantize", "unet-tiny", "--precision", "int8", "--calib-synthetic", "2", "--size", "64x128",
                   "--json", check=True)  # fmt: skip
    doc = json.loads(proc.stdout)
    ref = cache.get_ref("unet-tiny")
    assert ref["onnx"]["key"] != ref["onnx-int8"]["key"]  # the float32 conversion is still there
    assert ref["onnx-int8"]["key"] == doc["key"] and ref["onnx-int8"]["derived_from"] == ref["paddle"]["key"]
    folder = cache.onnx_dir() / doc["key"]
    assert cache.check_tree(folder) == []
    assert cache.variant_path("unet-tiny", "onnx-int8") == folder / "model.onnx" == Path(doc["path"])
    provenance = cache.read_manifest(folder)["provenance"]
    assert provenance["derived_from"] == ref["paddle"]["key"] and provenance["onnx_key"] == ref["onnx"]["key"]
    assert provenance["calibration"]["count"] == 2 and provenance["versions"]["onnxruntime"] == ort.__version__
    x = _scenes(1)[0]
    assert _run(folder / "model.onnx", x).shape == _run(unet, x).shape
    # the synthetic set went through the unet plugin's preprocessing: it hashes like the one built here
    expected = hashlib.sha256()
    for x in _scenes(2, seed=0):
        expected.update(str(x.shape).encode())
        expected.update(x.tobytes())
    assert provenance["calibration"]["sha256"] == "sha256:" + expected.hexdigest()


def test_cli_errors_name_the_next_step(unet, tmp_path):
    proc = run_zoo("quantize", "unet-tiny", "--precision", "int8")
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("zoo: error:") and "--calib" in last
    assert "Traceback" not in proc.stderr
    proc = run_zoo("quantize", "unet-tiny", "--precision", "int8", "--calib", str(tmp_path / "missing"))
    assert proc.returncode == 1 and "no such folder" in proc.stderr
    assert "onnx-int8" not in cache.get_ref("unet-tiny")
    with pytest.raises(NotCachedError, match="zoo quantize unet-tiny --precision int8"):
        cache.variant_path("unet-tiny", "onnx-int8")
    assert not [p for p in cache.onnx_dir().iterdir() if p.name.startswith(".")]  # no half-written entry


@pytest.mark.parametrize(("precision", "hidden"), [("int8", "ml_dtypes"), ("fp16", "onnxconverter_common")])
def test_missing_optional_package_is_a_one_line_error(unet, tmp_path, precision, hidden):
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name == {hidden!r} or name.startswith({hidden!r} + "."):
                    raise ModuleNotFoundError(f"No module named {{name!r}}")
        sys.meta_path.insert(0, Hide())
        import numpy as np
        from zoo.make import quantize
        from zoo.errors import NotCachedError, QuantizationError
        try:
            quantize.quantize_onnx({str(unet)!r}, {str(tmp_path / "v.onnx")!r}, precision={precision!r},
                                   calibration=[np.zeros((1, 3, 32, 32), np.float32)])
        except QuantizationError as exc:
            print(exc)
            sys.exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and hidden in lines[0] and "pip install 'zoo[quantize]'" in lines[0]
    assert not (tmp_path / "v.onnx").exists()
