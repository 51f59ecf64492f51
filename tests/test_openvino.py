"""The OpenVINO backend on real exported models: the precision it reports is the one it ran, float32 labels equal
onnxruntime's, and a missing openvino package is a one-line error with the install command."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from zoo.make import quantize
from zoo.errors import BackendError
from zoo.runners.runtime import preprocess
from zoo.synthetic import street_scene

ov = pytest.importorskip("openvino", reason="the openvino backend's tests need: pip install 'zoo[openvino]'")
from zoo.runners import openvino as backends_openvino  # noqa: E402


def _bare_ort(path: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _scene(spec, size=(64, 128), seed=0) -> np.ndarray:
    return preprocess(street_scene(*size, seed=seed), spec)


@pytest.fixture
def unet(models) -> tuple[Path, object]:
    from zoo.registry.plugins import get_architecture

    return models.install_converted("unet-tiny"), get_architecture("unet").input


def test_backend_fields_follow_the_contract():
    fields = backends_openvino.BACKEND_FIELDS
    assert fields["name"] == "openvino" and fields["formats"] == ("onnx",)
    assert fields["precisions"] == ("fp32", "bf16", "int8") and fields["requires"] == ("openvino",)
    assert fields["install"] == "pip install 'zoo[openvino]'"
    paddle = backends_openvino.PADDLE_BACKEND
    assert paddle.name == "openvino-paddle" and paddle.formats == ("paddle",) and paddle.precisions == ("fp32", "bf16")
    module, _, attr = fields["runner"].partition(":")
    assert getattr(importlib.import_module(module), attr) is backends_openvino.open_runner


def test_fp32_and_bf16_report_the_precision_they_ran(unet):
    path, spec = unet
    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    f32 = backends_openvino.open_runner(path, threads=1, precision="fp32")
    f32.run(_scene(spec))
    described = f32.describe()
    assert described["precision"] == "fp32" and described["inference_precision_hint"] == "fp32"
    assert set(described["convolution_precisions"]) == {"fp32"} and described["threads"] == 1
    if "BF16" not in caps:
        with pytest.raises(BackendError, match="bfloat16"):
            backends_openvino.open_runner(path, threads=1, precision="bf16")
        return
    bf16 = backends_openvino.open_runner(path, threads=1, precision="bf16")
    bf16.run(_scene(spec))
    described = bf16.describe()
    assert described["precision"] == "bf16" and set(described["convolution_precisions"]) == {"bf16"}


def test_int8_variant_runs_integer_convolutions(unet, tmp_path):
    path, spec = unet
    scenes = [_scene(spec, seed=100 + i) for i in range(3)]
    quantize.quantize_onnx(path, tmp_path / "int8.onnx", precision="int8", calibration=scenes)
    runner = backends_openvino.open_runner(tmp_path / "int8.onnx", threads=1, precision="int8")
    out = runner.run(_scene(spec))
    assert out.shape == _bare_ort(path, _scene(spec)).shape
    described = runner.describe()
    assert described["precision"] == "int8" and set(described["convolution_precisions"]) == {"int8"}
    # the float model asked for int8 is still run in float: the report says what ran, not what was asked
    plain = backends_openvino.open_runner(path, threads=1, precision="int8")
    plain.run(_scene(spec))
    assert plain.describe()["precision"] == "fp32"


def test_new_input_shape_is_compiled_for_it(unet):
    path, spec = unet
    runner = backends_openvino.open_runner(path, threads=1)
    for size in ((64, 128), (96, 64), (64, 128)):
        x = _scene(spec, size=size)
        np.testing.assert_array_equal(runner.run(x).reshape(-1, *size), _bare_ort(path, x).reshape(-1, *size))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bisenet", "fcn"])
def test_fp32_labels_equal_onnxruntime_on_a_real_model(models, name):
    from zoo.registry.plugins import get_architecture

    path = models.install_converted(name)
    spec = get_architecture(name).input
    runner = backends_openvino.open_runner(path, threads=2, precision="fp32")
    for seed in (0, 1):
        x = _scene(spec, size=(128, 256), seed=seed)
        got, expected = runner.run(x), _bare_ort(path, x)
        assert got.shape == expected.shape
        assert (got == expected).mean() >= 0.9999, (got == expected).mean()


def test_missing_openvino_is_a_one_line_error_with_the_install_command(unet, tmp_path):
    path, _ = unet
    script = textwrap.dedent(f"""
        import sys
        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name == "openvino" or name.startswith("openvino."):
                    raise ModuleNotFoundError(f"No module named {{name!r}}")
        sys.meta_path.insert(0, Hide())
        from zoo.runners import openvino as backends_openvino
        from zoo.errors import BackendError
        try:
            backends_openvino.open_runner({str(path)!r})
        except BackendError as exc:
            print(exc)
            sys.exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "pip install 'zoo[openvino]'" in lines[0] and "openvino" in lines[0]


def test_bad_requests_are_backend_errors(unet, tmp_path):
    path, _ = unet
    with pytest.raises(BackendError, match="CPU only"):
        backends_openvino.open_runner(path, device="gpu")
    with pytest.raises(BackendError, match="fp16"):
        backends_openvino.open_runner(path, precision="fp16")
    with pytest.raises(BackendError, match="no such ONNX"):
        backends_openvino.open_runner(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(BackendError, match="cannot read"):
        backends_openvino.open_runner(tmp_path / "junk.onnx")


def _paddle_labels(folder: Path, x: np.ndarray) -> np.ndarray:
    from zoo.runners.paddle import PaddleRunner

    return PaddleRunner(folder, threads=2).run(x)


@pytest.mark.parametrize("name", ["unet-tiny", pytest.param("bisenet", marks=pytest.mark.slow),
                                  pytest.param("fcn", marks=pytest.mark.slow)])  # fmt: skip
def test_openvino_paddle_runs_the_legacy_program_as_paddle_does(models, name):
    """openvino-paddle reads the Paddle program itself (no ONNX): logits of unet-tiny, labels of the real networks."""
    from zoo.registry.plugins import get_architecture
    from zoo.registry.entries import get as registry_get

    arch = "unet" if name == "unet-tiny" else registry_get(name).architecture
    spec = get_architecture(arch).input
    output_op = "none" if name == "unet-tiny" else "argmax"
    folder = models.get(name, output_op=output_op, legacy=True)
    runner = backends_openvino.open_paddle_runner(folder, threads=2)
    assert runner.backend == "openvino-paddle" and runner.path.name == "model.pdmodel"
    for seed in (0, 1):
        x = _scene(spec, size=(128, 256), seed=seed)
        got, want = runner.run(x), _paddle_labels(folder, x)
        assert got.shape == want.shape
        if output_op == "none":
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * float(np.abs(want).max()))
        else:
            assert (got == want).mean() >= 0.9999, (got == want).mean()
    described = runner.describe()
    assert described["model_format"] == "paddle" and described["precision"] == "fp32"


def test_openvino_paddle_refuses_what_it_cannot_read(models, tmp_path):
    pir = models.get("unet-tiny")  # PIR model.json
    with pytest.raises(BackendError, match=r"legacy Paddle programs .* --backend openvino"):
        backends_openvino.open_paddle_runner(pir)
    with pytest.raises(BackendError, match="int8 variants are ONNX files"):
        backends_openvino.open_paddle_runner(models.get("unet-tiny", legacy=True), precision="int8")
    with pytest.raises(BackendError, match="no Paddle program"):
        backends_openvino.open_paddle_runner(tmp_path)


def test_openvino_paddle_through_the_cli(models, tmp_path):
    import cv2

    from tests.conftest import run_zoo

    models.install("unet-tiny", legacy=True)  # Paddle model only: nothing converted
    image = tmp_path / "street.png"
    cv2.imwrite(str(image), street_scene(64, 128, seed=3)[:, :, ::-1])
    out = tmp_path / "out"
    proc = run_zoo("run", "unet-tiny", str(image), "--out", str(out), "--backend", "openvino-paddle", "--json")
    assert proc.returncode == 0, proc.stderr
    written = cv2.imread(str(out / "street.labels.png"), cv2.IMREAD_UNCHANGED)
    from zoo.registry.plugins import get_architecture

    expected = _paddle_labels(models.get("unet-tiny", legacy=True), _scene(get_architecture("unet").input, seed=3))
    np.testing.assert_array_equal(written, expected.reshape(written.shape))
    listed = run_zoo("plugins", "--json")
    assert listed.returncode == 0 and '"openvino-paddle"' in listed.stdout
