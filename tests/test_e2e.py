"""The whole job for each of the five architectures, as a user runs it, through a real loopback HTTP server.

seeded random export → served as a PaddleSeg-style inference archive → zoo pull → zoo convert → zoo verify →
zoo run on a synthetic street image and on a folder holding bad files. Each architecture goes through twice: as a
PIR ``model.json`` with argmax output, and as a legacy ``model.pdmodel`` with logits output.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.discovered import BUILTIN_ARCHITECTURES
from tests.http_server import http_server  # noqa: F401
from zoo.store import cache
from zoo.synthetic import write_street_png

ARCHS = BUILTIN_ARCHITECTURES
VARIANTS = {"pir-argmax": {"legacy": False, "output_op": "argmax"}, "legacy-logits": {"legacy": True, "output_op": "none"}}
H, W = 64, 128


def serve_model(server, models, arch: str, variant: str, tmp_path: Path) -> tuple[str, Path]:
    name = f"{arch}-e2e"
    url = server.add(f"/{name}.tar", models.archive(arch, top=name, **VARIANTS[variant]))
    registry = tmp_path / "registry.toml"
    registry.write_text(
        f'[models.{name}]\narchitecture = "{arch}"\nnum_classes = 19\n[models.{name}.inference]\nurls = ["{url}"]\n'
    )
    return name, registry


def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    write_street_png(folder / "street.png", H, W, seed=1)
    cv2.imwrite(str(folder / "street2.jpg"), cv2.imread(str(folder / "street.png")))
    (folder / "notes.png").write_text("not an image\n")
    (folder / "cut.png").write_bytes((folder / "street.png").read_bytes()[:200])
    return folder


def paddleseg_labels(onnx_path: Path, image: Path) -> np.ndarray:
    """Labels computed without zoo: PaddleSeg's documented inference steps (cv2 reads BGR → RGB, /255,
    (x - 0.5) / 0.5 per channel, HWC → CHW, batch of 1) into a bare onnxruntime session; argmax over scores."""
    import onnxruntime as ort

    rgb = cv2.cvtColor(cv2.imread(str(image), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    x = ((rgb - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    return out.reshape(out.shape[-2:]) if np.issubdtype(out.dtype, np.integer) else out[0].argmax(0)


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("arch", ARCHS)
def test_pull_convert_verify_run(arch, variant, models, http_server, tmp_path):  # noqa: F811
    name, registry = serve_model(http_server, models, arch, variant, tmp_path)
    env = {"ZOO_REGISTRY": str(registry)}

    pulled = run_zoo("pull", name, "--quiet", env=env, check=True)
    assert f"{name} (paddle): pulled from inference {http_server.url('/' + name + '.tar')}" in pulled.stdout
    program = "model.pdmodel" if VARIANTS[variant]["legacy"] else "model.json"
    folder = Path(run_zoo("cache", "path", name, env=env, check=True).stdout.strip())
    assert (folder / program).is_file() and (folder / "model.pdiparams").is_file()

    offline = {**env, "ZOO_OFFLINE": "1"}  # everything after the pull works without the network
    converted = json.loads(run_zoo("convert", name, "--json", env=offline, check=True).stdout)
    onnx_path = Path(converted["path"])
    assert onnx_path.is_file() and converted["sha256"] == cache.sha256_file(onnx_path)

    verified = run_zoo("verify", name, "--size", f"{H}x{W}", "--count", "1", "--json", env=offline)
    report = json.loads(verified.stdout)
    assert verified.returncode == 0 and report["passed"] is True, report["summary"]
    overall = report["overall"]
    if VARIANTS[variant]["output_op"] == "argmax":
        assert overall["kind"] == "labels" and overall["agreement"] >= 0.9999
    else:
        assert overall["kind"] == "logits" and overall["allclose"] and overall["cosine"] > 0.9999

    inputs = image_folder(tmp_path)
    out = tmp_path / "out"
    single = run_zoo("run", name, str(inputs / "street.png"), "--out", str(out), "--json", env=offline, check=True)
    (summary,) = json.loads(single.stdout)
    labels = cv2.imread(str(out / "street.labels.png"), cv2.IMREAD_UNCHANGED)
    colour = cv2.imread(str(out / "street.color.png"))
    assert labels.shape == (H, W) and labels.dtype == np.uint8 and labels.max() < 19
    np.testing.assert_array_equal(labels, paddleseg_labels(onnx_path, inputs / "street.png"))  # exactly equal
    assert colour.shape == (H, W, 3) and (out / "street.json").is_file()
    assert abs(sum(summary["classes"].values()) - 1.0) < 1e-3

    folder_run = run_zoo("run", name, str(inputs), "--out", str(tmp_path / "out2"), env=offline)
    assert folder_run.returncode == 1
    assert "2 of 4 inputs failed" in folder_run.stderr
    assert "notes.png" in folder_run.stderr and "cut.png" in folder_run.stderr
    assert (tmp_path / "out2" / "street.labels.png").is_file() and (tmp_path / "out2" / "street2.labels.png").is_file()
    assert not list((tmp_path / "out2").glob("notes*")) and not list((tmp_path / "out2").glob("cut*"))


@pytest.mark.slow
def test_corrupted_onnx_is_caught(models, http_server, tmp_path):  # noqa: F811
    name, registry = serve_model(http_server, models, "bisenet", "pir-argmax", tmp_path)
    env = {"ZOO_REGISTRY": str(registry)}
    run_zoo("pull", name, "--quiet", env=env, check=True)
    onnx_path = Path(json.loads(run_zoo("convert", name, "--json", env=env, check=True).stdout)["path"])
    data = bytearray(onnx_path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    onnx_path.write_bytes(bytes(data))

    checked = run_zoo("cache", "verify", name, env=env)
    assert checked.returncode == 1 and "corrupt" in checked.stdout + checked.stderr and "model.onnx" in checked.stdout + checked.stderr
    verified = run_zoo("verify", name, "--size", f"{H}x{W}", "--count", "1", env=env)
    assert verified.returncode == 1 and "Traceback" not in verified.stderr
    assert "model.onnx is corrupt" in verified.stderr and f"zoo convert {name} --force" in verified.stderr
    ran = run_zoo("run", name, str(image_folder(tmp_path) / "street.png"), "--out", str(tmp_path / "o"), env=env)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr and "model.onnx is corrupt" in ran.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
