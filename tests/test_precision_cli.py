"""--precision through run, verify and bench: the int8 variant is what runs, and verify judges it against float32.

The oracle is a bare onnxruntime session on the cached files (float32 conversion and int8 variant), fed the unet
plugin's preprocessing of the same synthetic scenes verify uses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import run_zoo
from zoo.make import quantize
from zoo.store import cache
from zoo.runners.runtime import preprocess
from zoo.synthetic import street_scene

NAME = "unet-tiny"
H, W = 64, 128


def _labels(path: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    return out[0] if out.ndim == 3 else np.argmax(out, axis=1)[0]


def _scene_tensors(count: int, seed: int = 0) -> list[np.ndarray]:
    """The inputs `zoo verify --size HxW --count N --seed S` makes: street_scene(H, W, seed=S * 1000 + i)."""
    from zoo.registry.plugins import get_architecture

    spec = get_architecture("unet").input
    return [preprocess(street_scene(H, W, seed=seed * 1000 + i), spec) for i in range(count)]


@pytest.fixture
def bad_int8(models, tmp_path: Path) -> tuple[Path, Path]:
    """The float32 conversion and an int8 variant calibrated on flat frames (clipped ranges: labels flip)."""
    fp32 = models.install_converted(NAME)
    flat = [np.zeros((1, 3, H, W), np.float32)]
    made = tmp_path / "bad-int8.onnx"
    provenance = quantize.quantize_onnx(fp32, made, precision="int8", calibration=flat)
    return fp32, cache.store_variant(NAME, "onnx-int8", made, provenance)


def test_verify_precision_int8_is_judged_on_labels_and_fails_outside_tolerance(bad_int8):
    fp32, int8 = bad_int8
    xs = _scene_tensors(2)
    expected = np.mean([(_labels(fp32, x) == _labels(int8, x)).mean() for x in xs])
    assert expected < 0.98, "the flat calibration must flip more than 2% of the labels for this test"
    proc = run_zoo("verify", NAME, "--precision", "int8", "--size", f"{H}x{W}", "--count", "2", "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1, (doc["overall"], doc["models"], str(int8), expected)
    assert doc["passed"] is False and doc["tolerance"]["min_agreement"] == 0.98 and doc["tolerance"]["labels_only"]
    assert doc["candidate"] == "onnx/int8" and doc["models"]["onnx/int8"]["path"] == str(int8)  # the variant ran
    # Paddle Inference (the reference) and the float32 ONNX agree to 1e-4 of pixels, so the agreement is the oracle's
    assert doc["overall"]["agreement"] == pytest.approx(expected, abs=1e-3)
    assert "onnx int8" in proc.stderr  # what was compared is said
    # the stated default is overridable
    ok = run_zoo("verify", NAME, "--precision", "int8", "--size", f"{H}x{W}", "--count", "2", "--min-agreement", "0")
    assert ok.returncode == 0 and "PASS" in ok.stdout, ok.stderr
    # a precision nobody made is an error that names the command making it
    none = run_zoo("verify", NAME, "--precision", "fp16", "--size", f"{H}x{W}")
    assert none.returncode == 1 and f"zoo quantize {NAME} --precision fp16" in none.stderr


def test_run_precision_int8_writes_the_variants_labels(bad_int8, tmp_path: Path):
    import cv2

    _, int8 = bad_int8
    rgb = street_scene(H, W, seed=5)
    image = tmp_path / "street.png"
    cv2.imwrite(str(image), rgb[:, :, ::-1])
    out = tmp_path / "out"
    proc = run_zoo("run", NAME, str(image), "--out", str(out), "--precision", "int8", "--json")
    assert proc.returncode == 0, proc.stderr
    from zoo.registry.plugins import get_architecture

    expected = _labels(int8, preprocess(rgb, get_architecture("unet").input))
    written = cv2.imread(str(out / "street.labels.png"), cv2.IMREAD_UNCHANGED)  # grayscale class ids
    assert written.shape == expected.shape and written.ndim == 2
    np.testing.assert_array_equal(written, expected)


def test_bench_precisions_run_each_variant(bad_int8):
    proc = run_zoo("bench", NAME, "--backend", "onnx", "--precision", "fp32,int8", "--size", f"{H}x{W}",
                   "--warmup", "0", "--runs", "2", "--threads", "1", "--json", timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["backends"]
    assert set(doc) == {"onnx/fp32", "onnx/int8"}
    assert doc["onnx/fp32"]["precision"] == "fp32" and doc["onnx/int8"]["precision"] == "int8"
    assert doc["onnx/int8"]["source"] == str(bad_int8[1]) and doc["onnx/fp32"]["source"] == str(bad_int8[0])
    # no Paddle row: the float32 ONNX row is the reference; agreement is the oracle's on the bench image
    from zoo.registry.plugins import get_architecture

    x = preprocess(street_scene(H, W, seed=0), get_architecture("unet").input)
    expected = float((_labels(bad_int8[0], x) == _labels(bad_int8[1], x)).mean())
    assert expected < 0.98
    assert json.loads(proc.stdout)["reference"] == "onnx/fp32" and doc["onnx/fp32"]["agreement"] == 1.0
    assert doc["onnx/int8"]["agreement"] == pytest.approx(expected, abs=1e-6)
    assert doc["onnx/int8"]["speedup"] > 0  # the arithmetic: test_bench.py::test_speedup_and_agreement_against_the_reference_row
    bad = run_zoo("bench", NAME, "--precision", "int4")
    assert bad.returncode == 2 and "--precision" in bad.stderr


@pytest.mark.skipif(not __import__("zoo.runners.paddle_config").runners.paddle_config.cpu_has_bf16(), reason="no AVX-512 BF16 here")
def test_paddle_bf16_through_bench_and_run(models, tmp_path: Path):
    """Paddle Inference's own reduced precision from the CLI: bench rows per precision; a legacy program is refused."""
    import cv2

    models.install(NAME)  # a PIR program (what zoo export writes)
    proc = run_zoo("bench", NAME, "--backend", "onnx,paddle", "--precision", "fp32,bf16", "--size", f"{H}x{W}",
                   "--warmup", "0", "--runs", "2", "--threads", "1", "--json", timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    rows = doc["backends"]
    assert list(rows) == ["onnx/fp32", "paddle/fp32", "paddle/bf16"]  # ORT has no bf16: skipped, not an error
    assert rows["paddle/bf16"]["precision"] == "bf16" and rows["paddle/fp32"]["precision"] == "fp32"
    assert doc["reference"] == "paddle/fp32" and 0.5 < rows["paddle/bf16"]["agreement"] <= 1.0
    table = run_zoo("bench", NAME, "--backend", "onnx,paddle", "--precision", "fp32,bf16", "--size", f"{H}x{W}",
                    "--warmup", "0", "--runs", "1", "--threads", "1", timeout=300)  # fmt: skip
    assert table.returncode == 0 and "SPEED-UP" in table.stdout and "LABELS" in table.stdout, table.stderr
    bad = run_zoo("bench", NAME, "--backend", "onnx,tensorrt")
    assert bad.returncode == 2 and "tensorrt" in bad.stderr
    image = tmp_path / "street.png"
    cv2.imwrite(str(image), street_scene(H, W, seed=5)[:, :, ::-1])
    ran = run_zoo("run", NAME, str(image), "--out", str(tmp_path / "out"), "--backend", "paddle", "--precision", "bf16")
    assert ran.returncode == 0 and (tmp_path / "out" / "street.labels.png").is_file(), ran.stderr
    models.install(NAME, legacy=True)  # what published PaddleSeg archives hold
    legacy = run_zoo("run", NAME, str(image), "--out", str(tmp_path / "out2"), "--backend", "paddle",
                     "--precision", "bf16")  # fmt: skip
    assert legacy.returncode == 1 and "only PIR programs" in legacy.stderr and "--backend openvino" in legacy.stderr
    assert len(legacy.stderr.strip().splitlines()) == 1, legacy.stderr
    assert not (tmp_path / "out2" / "street.labels.png").exists()
