"""Variants in the cache: derived models (the ONNX conversion, later int8/fp16) follow the Paddle model they came from.

Issue 12 item 9: a conversion of an earlier Paddle model must never answer for a new one — after a bundle import, a
re-export or a pull --force that changes the Paddle model, its derived variants are dropped. The oracle for "which
network answers" is Paddle Inference on the Paddle model now cached.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.http_server import http_server  # noqa: F401
from tests.test_archive import use_registry  # noqa: F401
from zoo.runners import runtime
from zoo.make import bundle
from zoo.store import cache, housekeeping
from zoo.errors import NotCachedError
from zoo.synthetic import street_scene

NAME = "unet-tiny"


def _labels(backend: str) -> np.ndarray:
    return runtime.load(NAME, backend=backend, threads=1).predict(street_scene(40, 56, seed=3))


def _paddle_only_bundle(models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> Path:
    """A bundle carrying only the Paddle model of NAME exported with ``seed``, made in a ZOO_HOME of its own."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "source-home"))
    models.install(NAME, seed=seed)
    out = bundle.export_bundle([NAME], tmp_path / "paddle-only.tar").path
    with tarfile.open(out) as tf:
        assert not [m for m in tf.getnames() if m.startswith("onnx/")]  # the bundle really has no ONNX model
    return out


def test_bundle_import_drops_the_stale_conversion(models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    shipped = _paddle_only_bundle(models, tmp_path, monkeypatch, seed=1)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    models.install_converted(NAME, seed=7)  # export X --seed 7 + convert X
    old_onnx = _labels("onnx")
    bundle.import_bundle(shipped)
    new_paddle = _labels("paddle")  # the oracle: the network the cache now holds
    assert not np.array_equal(old_onnx, new_paddle), "seeds 1 and 7 must give different networks for this test"
    # the conversion of the seed-7 model is gone ...
    assert "onnx" not in cache.get_ref(NAME)
    # ... so `zoo run` (a real CLI run) converts the new model first instead of answering with the old network
    image = tmp_path / "in.png"
    import cv2

    cv2.imwrite(str(image), street_scene(40, 56, seed=3)[:, :, ::-1])
    proc = run_zoo("run", NAME, str(image), "--out", str(tmp_path / "out"), "--offline")
    assert proc.returncode == 0 and "converting" in proc.stderr, proc.stderr
    ref = cache.get_ref(NAME)
    assert ref["onnx"]["from"] == ref["paddle"]["key"]  # derived from the imported model
    np.testing.assert_array_equal(_labels("onnx"), new_paddle)


def test_export_drops_conversions_of_the_old_model(models, monkeypatch: pytest.MonkeyPatch):
    models.install_converted(NAME, seed=7)
    before = cache.get_ref(NAME)
    assert before["onnx"]["from"] == before["paddle"]["key"]
    from zoo.make.export import export_model

    folder = export_model(NAME, weights="random", seed=2)
    ref = cache.get_ref(NAME)
    assert ref["paddle"]["key"] == folder.name != before["paddle"]["key"]
    assert "onnx" not in ref
    with pytest.raises(NotCachedError):
        cache.onnx_model_path(NAME)


def test_same_paddle_model_again_keeps_its_conversion(models):
    models.install_converted(NAME, seed=7)
    onnx = cache.get_ref(NAME)["onnx"]
    models.install(NAME, seed=7)  # the same Paddle model pointed at again (e.g. a bundle of it re-imported)
    assert cache.get_ref(NAME)["onnx"]["key"] == onnx["key"]


def test_pull_force_drops_conversions_of_the_old_model(models, http_server, use_registry, monkeypatch):  # noqa: F811
    """pull --force brings a different Paddle model (the server's file changed): the old conversion goes."""

    def tar_of(folder: Path) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for path in sorted(folder.iterdir()):
                if path.name != cache.MANIFEST:
                    tf.add(path, arcname=f"{NAME}/{path.name}")
        return buf.getvalue()

    name = "unet-pulled"  # a registry entry of its own (unet-tiny is the plugin's)
    url = http_server.add("/unet.tar", tar_of(models.get(NAME, seed=7)))
    use_registry({name: {"architecture": "unet", "num_classes": 4, "inference": url}})
    from zoo.make.convert import convert
    from zoo.make.pull import pull

    pull(name)
    convert(name)
    assert "onnx" in cache.get_ref(name)
    http_server.add("/unet.tar", tar_of(models.get(NAME, seed=5)))  # the publisher replaced the file
    monkeypatch.setenv("ZOO_REQUIRE_HASH", "0")
    from zoo.store import pins

    pins.remove(f"{name}/inference")  # trust the new file (a pinned one would be refused, as it should)
    pull(name, force=True)
    ref = cache.get_ref(name)
    assert ref["paddle"]["sha256"] != ref.get("onnx", {}).get("sha256")
    assert "onnx" not in ref
    # loading the ONNX model (zoo.load: the public door) now converts the new Paddle model: it answers like Paddle
    # Inference on that model
    import zoo

    image = street_scene(40, 56, seed=3)
    onnx_labels = zoo.load(name, backend="onnx", threads=1).predict(image)
    np.testing.assert_array_equal(onnx_labels, runtime.load(name, backend="paddle", threads=1).predict(image))
    assert cache.get_ref(name)["onnx"]["from"] == cache.get_ref(name)["paddle"]["key"]


def _other_onnx(src: Path, dest: Path) -> Path:
    """A second, different .onnx of the same network (a changed doc string), standing in for an int8 conversion."""
    import onnx

    model = onnx.load(str(src))
    model.doc_string = "the int8 stand-in"
    onnx.save(model, str(dest))
    return dest


def test_variants_coexist_in_ls_path_load_bundle_and_rm(models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fp32 = models.install_converted(NAME)
    paddle_key = cache.get_ref(NAME)["paddle"]["key"]
    provenance = {"tool": "test", "settings": {"precision": "int8", "method": "stand-in"}}
    int8 = cache.store_variant(NAME, "onnx-int8", _other_onnx(fp32, tmp_path / "int8.onnx"), provenance)
    ref = cache.get_ref(NAME)
    assert cache.variant_path(NAME, "onnx") == fp32 and cache.variant_path(NAME, "onnx-int8") == int8 != fp32
    assert ref["onnx-int8"]["derived_from"] == paddle_key and ref["onnx-int8"]["tool"] == "test"
    manifest = cache.read_manifest(int8.parent)
    assert manifest["provenance"]["derived_from"] == paddle_key and manifest["provenance"]["variant"] == "onnx-int8"
    assert cache.cached_formats(NAME) == ["paddle", "onnx", "onnx-int8"]
    # every consumer sees both
    listed = json.loads(run_zoo("cache", "ls", "--json", check=True).stdout)
    row = next(m for m in listed["models"] if m["name"] == NAME)
    assert row["formats"] == ["paddle", "onnx", "onnx-int8"] and row["variants"]["onnx-int8"] == str(int8)
    assert run_zoo("cache", "path", NAME, "--format", "onnx-int8", check=True).stdout.strip() == str(int8)
    assert runtime.load(NAME, precision="int8", threads=1).source == int8
    assert runtime.load(NAME, threads=1).source == fp32
    assert not [p for p in housekeeping.prune(dry_run=True).removed if p in (int8.parent, fp32.parent)]
    assert housekeeping.verify(NAME).ok
    # a bundle carries both, and they arrive intact in an empty cache
    shipped = bundle.export_bundle([NAME], tmp_path / "both.tar").path
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "fresh"))
    bundle.import_bundle(shipped)
    assert cache.cached_formats(NAME) == ["paddle", "onnx", "onnx-int8"]
    assert cache.sha256_file(cache.variant_path(NAME, "onnx-int8")) == cache.sha256_file(int8)
    # removing one variant leaves the rest
    proc = run_zoo("cache", "rm", NAME, "--variant", "onnx-int8", check=True)
    assert "removed" in proc.stdout
    assert cache.cached_formats(NAME) == ["paddle", "onnx"]
    assert not (cache.onnx_dir() / int8.parent.name).exists()
    refused = run_zoo("cache", "rm", NAME, "--variant", "onnx-fp16")
    assert refused.returncode == 1 and "cached variants: onnx" in refused.stderr


def test_a_new_paddle_model_drops_every_variant(models, tmp_path: Path):
    fp32 = models.install_converted(NAME)
    cache.store_variant(NAME, "onnx-int8", _other_onnx(fp32, tmp_path / "int8.onnx"), {"tool": "test"})
    models.install(NAME, seed=4)
    assert cache.cached_formats(NAME) == ["paddle"]
    with pytest.raises(NotCachedError, match="zoo quantize unet-tiny --precision int8"):
        runtime.load(NAME, precision="int8")
