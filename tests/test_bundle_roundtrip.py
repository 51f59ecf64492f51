"""A bundle of a real exported model: export → `zoo bundle export` → a fresh machine (an empty ZOO_HOME, no
registry naming the model) → `zoo bundle import` → `zoo convert` → `zoo run`, whose labels must equal a bare
onnxruntime session's on PaddleSeg's preprocessing. Also: files made for the user follow the umask.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.test_images import street, write
from tests.test_run import IMAGENET, bare_onnx_labels


@pytest.fixture
def umask_027():
    old = os.umask(0o027)  # zoo's subprocesses inherit it
    try:
        yield 0o640  # what a file created with mode 0666 gets
    finally:
        os.umask(old)


@pytest.mark.slow
def test_bundle_round_trip_runs_after_import(models, tmp_path: Path, zoo_home: Path, umask_027: int):
    models.install("unet-tiny")
    bundle = tmp_path / "carry" / "unet.tar"
    run_zoo("bundle", "export", "unet-tiny", "--output", str(bundle), check=True)
    assert bundle.stat().st_mode & 0o777 == umask_027  # a file for the user, not a 0600 temp file

    # the other machine: its own empty cache, and a registry that knows nothing of this model's name
    other = {"ZOO_HOME": str(tmp_path / "other-home"), "ZOO_OFFLINE": "1"}
    renamed = tmp_path / "renamed.tar"
    _rename_in_bundle(bundle, renamed, "unet-tiny", "carried-unet")
    run_zoo("bundle", "import", str(renamed), env=other, check=True)
    onnx_path = Path(run_zoo("convert", "carried-unet", env=other, check=True).stdout.strip())
    assert onnx_path.is_file() and onnx_path.is_relative_to(tmp_path / "other-home")
    image = write(tmp_path / "s.png", street())
    out = tmp_path / "out"
    run_zoo("run", "carried-unet", str(image), "--out", str(out), env=other, check=True)
    labels = cv2.imread(str(out / "s.labels.png"), cv2.IMREAD_UNCHANGED)
    expected = bare_onnx_labels(onnx_path, cv2.imread(str(image), cv2.IMREAD_COLOR), IMAGENET.mean, IMAGENET.std)
    np.testing.assert_array_equal(labels, expected)
    assert len(np.unique(expected)) > 1  # the comparison means something


def _rename_in_bundle(src: Path, dest: Path, old: str, new: str) -> None:
    """The same bundle with the model's ref under another name, as if the exporting machine's registry had called
    it that: no registry here knows the new name, so only the cache can say what the model is."""
    import io
    import json
    import tarfile

    with tarfile.open(src) as tin, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tout:
        members = {m.name: tin.extractfile(m).read() for m in tin.getmembers() if m.isfile()}
        index_name = "bundle.json"  # zoo/make/bundle.py's index: models, and sha256 + size of every other file
        index = json.loads(members[index_name])
        renamed = {}
        for name, data in members.items():
            if name == f"refs/{old}.json":
                name = f"refs/{new}.json"
            renamed[name] = data
        index["models"] = {new if k == old else k: v for k, v in index["models"].items()}
        files = index["files"]
        if f"refs/{old}.json" in files:
            files[f"refs/{new}.json"] = files.pop(f"refs/{old}.json")
        renamed[index_name] = json.dumps(index).encode()
        for name, data in sorted(renamed.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))


def test_verify_report_follows_the_umask(models, tmp_path: Path, umask_027: int):
    models.install_converted("unet-tiny")
    report = tmp_path / "report"
    run_zoo("verify", "unet-tiny", "--size", "32x48", "--count", "1", "--report", str(report), check=True)
    modes = {p.name: p.stat().st_mode & 0o777 for p in report.iterdir()}
    assert "verify.json" in modes and any(n.endswith(".png") for n in modes)
    assert modes == dict.fromkeys(modes, umask_027)
