"""Small real models for tests: exported once per test session, installed into each test's own ZOO_HOME.

Use the ``models`` fixture::

    def test_x(models):
        folder = models.install("fcn")                      # cached Paddle model of registry entry "fcn"
        folder = models.install("unet-tiny", legacy=True)   # legacy model.pdmodel, via the zoo-unet test plugin
        onnx = models.install_converted("unet-tiny")         # the Paddle model plus its ONNX conversion
        src = models.get("bisenet", output_op="none")       # the session copy (do not modify it)
        tar = models.archive("fcn")                         # bytes of a PaddleSeg-style inference tar

Every model has seeded random weights. ``unet-tiny`` comes from the third-party test plugin in
``tests/plugins/zoo_unet_dist`` (put on sys.path by :func:`use_unet_plugin`); it is tiny and fast.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

UNET_DIST = Path(__file__).parent / "plugins" / "zoo_unet_dist"


def use_unet_plugin(monkeypatch: pytest.MonkeyPatch | None = None) -> dict[str, str]:
    """Make the zoo-unet test plugin importable here; return env additions for subprocesses."""
    if str(UNET_DIST) not in sys.path:
        if monkeypatch is not None:
            monkeypatch.syspath_prepend(str(UNET_DIST))
        else:
            sys.path.insert(0, str(UNET_DIST))
    current = os.environ.get("PYTHONPATH", "")
    parts = current.split(os.pathsep) if current else []
    path = os.pathsep.join(parts if str(UNET_DIST) in parts else [str(UNET_DIST), *parts])
    if monkeypatch is not None:
        monkeypatch.setenv("PYTHONPATH", path)
    else:  # the session store's exports spawn children (legacy export) that must find the plugin too
        os.environ["PYTHONPATH"] = path
    return {"PYTHONPATH": path}


class ModelStore:
    """Exports each (name, output_op, legacy, seed) once into a session cache; copies it into tests on demand."""

    def __init__(self, root: Path):
        self.root = root
        self._folders: dict[tuple, Path] = {}
        self._converted: dict[tuple, tuple[Path, dict]] = {}  # export key → (onnx/<key> entry, its ref record)

    def get(self, name: str, *, output_op: str = "argmax", legacy: bool = False, seed: int = 0) -> Path:
        """The session's exported model folder (model files, deploy.yaml, manifest.json). Read-only."""
        key = (name, output_op, legacy, seed)
        if key not in self._folders:
            from zoo.make.export import export_model

            if name.startswith("unet"):
                use_unet_plugin()
            saved = os.environ.get("ZOO_HOME")
            os.environ["ZOO_HOME"] = str(self.root)
            try:
                self._folders[key] = export_model(name, weights="random", output_op=output_op, legacy=legacy,
                                                  seed=seed)  # fmt: skip
            finally:
                if saved is None:
                    os.environ.pop("ZOO_HOME", None)
                else:
                    os.environ["ZOO_HOME"] = saved
        return self._folders[key]

    def install(self, name: str, **kwargs) -> Path:
        """Copy the model into the current ZOO_HOME's cache and point ``name``'s Paddle ref at it."""
        from zoo.store import cache

        src = self.get(name, **kwargs)
        dest = cache.models_dir() / src.name
        if not dest.exists():
            with cache.staging(cache.models_dir()) as stage:
                shutil.copytree(src, stage, dirs_exist_ok=True)
                os.rename(stage, dest)
        provenance = cache.read_manifest(dest)["provenance"]
        cache.set_ref(name, "paddle", {"key": dest.name, "source": "export", **provenance})
        return dest

    def install_converted(self, name: str, **kwargs) -> Path:
        """:meth:`install`, plus its ONNX conversion (converted once per session, then copied in like a cache hit)."""
        from zoo.store import cache

        self.install(name, **kwargs)
        key = (name, *sorted(kwargs.items()))
        if key not in self._converted:
            from zoo.make.convert import convert

            result = convert(name)
            keep = self.root / "converted" / result.path.parent.name
            if not keep.exists():
                shutil.copytree(result.path.parent, keep)
            self._converted[key] = (keep, cache.get_ref(name)["onnx"])
            return result.path
        entry, record = self._converted[key]
        if not (cache.onnx_dir() / entry.name).exists():
            shutil.copytree(entry, cache.onnx_dir() / entry.name)
        cache.set_ref(name, "onnx", record)
        return cache.onnx_model_path(name)

    def archive(self, name: str, *, top: str | None = None, **kwargs) -> bytes:
        """A PaddleSeg-style inference tar: one top folder holding the model files and deploy.yaml."""
        src = self.get(name, **kwargs)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path in sorted(src.iterdir()):
                if path.name != "manifest.json":
                    tar.add(path, arcname=f"{top or name}/{path.name}")
        return buf.getvalue()


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    return ModelStore(tmp_path_factory.mktemp("model-store"))


@pytest.fixture
def models(model_store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> ModelStore:
    """The session's model store, with the zoo-unet test plugin importable in this test (and its subprocesses)."""
    use_unet_plugin(monkeypatch)
    return model_store
