"""``zoo add``: a PaddleSeg export zoo has never seen, end to end by name, against PaddleSeg itself.

The models are built from PaddleSeg's own classes (PP-LiteSeg on STDC1 with a fixed input shape, exported as a PIR
``model.json``; UNet with a dynamic shape, exported as a legacy ``model.pdmodel``) with seeded weights, and exported
the way PaddleSeg's ``tools/export.py`` does (``tests/paddleseg_export.py``). The oracle for labels is Paddle Inference
run directly on the export folder, its input made by PaddleSeg's own ``transforms.Compose`` from the folder's
deploy.yaml (as ``deploy/python/infer.py`` does) and its output mapped back to the image by PaddleSeg's
``reverse_transform``; for metrics, ``paddleseg.utils.metrics``.
"""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.http_server import http_server  # noqa: F401  (fixture)

HERE = Path(__file__).parent
# (name, PaddleSeg network, classes, legacy program, fixed input shape, val transforms, zoo add options)
EXPORTS = {
    "lite": dict(arch="ppliteseg", num_classes=4, seed=3, legacy=False, input_shape=[1, 3, 128, 256],
                 transforms=[{"type": "Resize", "target_size": [256, 128]},
                             {"type": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}]),
    "unet": dict(arch="unet", num_classes=6, seed=5, legacy=True, input_shape=None,
                 transforms=[{"type": "Resize", "target_size": [96, 96], "keep_ratio": True},
                             {"type": "Padding", "target_size": [96, 96]}, {"type": "Normalize"}]),
}  # fmt: skip
LABELS = {"lite": ["background", "road", "lane", "sign"],
          "unet": ["wall", "floor", "sky", "tree", "person", "car"]}  # fmt: skip


def _oracle_path() -> str:
    return os.environ.get("ZOO_TEST_PADDLESEG_PATH", "")


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """Each model of EXPORTS exported by PaddleSeg's classes and export recipe, once per module."""
    pytest.importorskip("paddleseg.deploy.export")
    root = tmp_path_factory.mktemp("paddleseg-exports")
    out = {}
    for name, options in EXPORTS.items():
        folder = root / name
        folder.mkdir()
        env = {**os.environ, "FLAGS_enable_pir_api": "0" if options["legacy"] else "1",
               "ZOO_TEST_PADDLESEG_PATH": _oracle_path()}  # fmt: skip
        proc = subprocess.run([sys.executable, str(HERE / "paddleseg_export.py"), str(folder), json.dumps(options)],
                              env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[name] = folder
    return out


def paddleseg_labels(export: Path, image: Path) -> np.ndarray:
    """Labels of ``image`` as PaddleSeg's deploy pipeline gives them at the image's size (see the module docstring)."""
    import paddle
    import paddleseg.transforms as T
    import yaml
    from paddle.inference import Config, create_predictor
    from paddleseg.core.infer import reverse_transform
    from paddleseg.cvlibs import manager

    deploy = yaml.safe_load((export / "deploy.yaml").read_text())["Deploy"]
    ops = []
    for t in copy.deepcopy(deploy["transforms"]):
        ops.append(manager.TRANSFORMS[t.pop("type")](**t))
    data = T.Compose(ops)({"img": str(image)})
    program = export / ("model.json" if (export / "model.json").is_file() else "model.pdmodel")
    config = Config(str(program), str(export / "model.pdiparams"))
    config.disable_gpu()
    config.disable_mkldnn()
    if program.suffix == ".pdmodel":
        config.enable_new_ir(False)
    predictor = create_predictor(config)
    x = data["img"][None].astype("float32")
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(x.shape)
    handle.copy_from_cpu(x)
    predictor.run()
    out = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    label = reverse_transform(paddle.to_tensor(out[:, None].astype("int32")), data["trans_info"], mode="nearest")
    return label.numpy()[0, 0]


def _write_png(path: Path, array: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array)
    return path


def _street(path: Path, h: int, w: int, seed: int) -> Path:
    from zoo.synthetic import street_scene

    return _write_png(path, street_scene(h, w, seed=seed)[..., ::-1])


class _Paddle2Sum:
    """paddle with Paddle 2.x's ``sum`` (shape [1]): PaddleSeg 2.8's calculate_area concatenates them."""

    def __init__(self, paddle):
        self._paddle = paddle

    def __getattr__(self, name):
        return getattr(self._paddle, name)

    def sum(self, x, *args, **kwargs):
        return self._paddle.reshape(self._paddle.sum(x, *args, **kwargs), [1])


def paddleseg_miou(preds: list[np.ndarray], labels: list[np.ndarray], num_classes: int, monkeypatch) -> float:
    import paddle
    from paddleseg.utils import metrics as ps_metrics

    monkeypatch.setattr(ps_metrics, "paddle", _Paddle2Sum(paddle))
    total = None
    for pred, label in zip(preds, labels):
        one = ps_metrics.calculate_area(paddle.to_tensor(pred[None, None].astype("int32")),
                                        paddle.to_tensor(label[None, None].astype("int64")), num_classes)  # fmt: skip
        total = one if total is None else tuple(a + b for a, b in zip(total, one))
    return float(ps_metrics.mean_iou(*total)[1])


@pytest.mark.paddleseg
@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPORTS))
def test_unseen_paddleseg_export_works_by_name(name, exports, tmp_path, zoo_home, monkeypatch):
    export = exports[name]
    spec = EXPORTS[name]
    n = spec["num_classes"]
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("\n".join(LABELS[name]) + "\n")
    reduce = name == "unet"  # ADE20K's convention: label 0 is "other", ignored; the rest shift down by one
    add = ["add", name, str(export), "--labels", str(labels_file), "--dataset", "mine", "--license", "MIT"]
    run_zoo(*add, *(["--reduce-zero-label"] if reduce else []), check=True)
    registry = zoo_home / "config" / "registry.toml"
    assert f'[models."{name}"]' in registry.read_text()
    program = "model.pdmodel" if spec["legacy"] else "model.json"

    # info --json: its classes, palette, input spec (from deploy.yaml and the program), provenance and source
    info = json.loads(run_zoo("info", name, "--json", check=True).stdout)
    assert info["labels"] == LABELS[name] and info["num_classes"] == n and len(info["palette"]) == n
    assert info["architecture"] is None and info["registry"] == str(registry) and info["source"] == "inference"
    assert info["provenance"]["url"] == str(export) and info["provenance"]["sha256"].startswith("sha256:")
    if name == "lite":  # fixed [1, 3, 128, 256] program, Resize to [256, 128] (W, H), ImageNet mean/std
        assert info["input"]["size_policy"] == "resize" and info["input"]["size"] == [128, 256]
        assert info["input"]["mean"] == [0.485, 0.456, 0.406] and info["input"]["std"] == [0.229, 0.224, 0.225]
    else:  # keep_ratio resize into 96x96, padded to 96x96, PaddleSeg's default Normalize
        assert info["input"]["keep_ratio"] is True and info["input"]["pad"] == [96, 96]
        assert info["input"]["mean"] == [0.5, 0.5, 0.5] and info["reduce_zero_label"] is True
    assert (export / program).is_file()

    # run: labels equal Paddle Inference on the export folder, mapped back to the image as PaddleSeg does
    image = _street(tmp_path / "in" / "street.png", 150, 230, seed=7)
    expected = paddleseg_labels(export, image)
    assert len(np.unique(expected)) > 1  # a model predicting one class everywhere would prove nothing
    import cv2

    for backend in ("paddle", "onnx"):
        out = tmp_path / f"out-{backend}"
        run_zoo("run", name, str(image), "--out", str(out), "--backend", backend, check=True)
        got = cv2.imread(str(out / "street.labels.png"), cv2.IMREAD_UNCHANGED)
        assert got.shape == expected.shape
        agreement = float((got == expected).mean())
        # the same engine and numbers: identical; ONNX Runtime may flip a near-tie pixel (float32 rounding)
        assert agreement == 1.0 if backend == "paddle" else agreement >= 0.999, (backend, agreement)
        summary = json.loads((out / "street.json").read_text())
        assert set(summary["classes"]) <= set(LABELS[name]) and summary["num_classes"] == n

    # convert + verify
    run_zoo("convert", name, check=True)
    verify = run_zoo("verify", name)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # eval on a small labelled set (PaddleSeg's list layout) == paddleseg.utils.metrics on the oracle's labels
    rng = np.random.default_rng(1)
    lines, preds, truths = [], [], []
    for i in range(3):
        img = _street(tmp_path / "data" / "images" / f"{i}.png", 120 + 10 * i, 200, seed=20 + i)
        truth = paddleseg_labels(export, img).astype(np.int64)
        noisy = np.where(rng.random(truth.shape) < 0.3, rng.integers(0, n, truth.shape), truth)
        stored = noisy + 1 if reduce else noisy  # an ADE-style file: 0 is "other", class c is stored as c + 1
        stored[:5] = 0 if reduce else 255  # some ignored pixels either way
        _write_png(tmp_path / "data" / "labels" / f"{i}.png", stored.astype(np.uint8))
        lines.append(f"images/{i}.png labels/{i}.png")
        preds.append(truth)
        truths.append(((stored.astype(np.uint8) - 1) if reduce else stored).astype(np.int64))  # PaddleSeg's ADE20K
    (tmp_path / "data" / "val.txt").write_text("\n".join(lines) + "\n")
    result = json.loads(run_zoo("eval", name, "--data", str(tmp_path / "data" / "val.txt"), "--backend", "paddle",
                                "--json", check=True).stdout)  # fmt: skip
    expected_miou = paddleseg_miou(preds, truths, n, monkeypatch)
    assert result["backends"]["paddle"]["miou"] == pytest.approx(expected_miou, abs=1e-9)
    assert result["labels"] == LABELS[name]

    # quantize + verify --precision int8; a fixed-shape program is calibrated at its own size
    run_zoo("quantize", name, "--precision", "int8", "--calib-synthetic", "4", check=True)
    # seeded random weights quantize worse than trained ones: 0.95 of the labels must agree (0.98 by default)
    int8 = run_zoo("verify", name, "--precision", "int8", "--min-agreement", "0.95")
    assert int8.returncode == 0, int8.stdout + int8.stderr

    # bundle export → import offline on a second home, which has no registry entry: it runs by name
    bundle = tmp_path / "b.tar"
    run_zoo("bundle", "export", name, "-o", str(bundle), check=True)
    other = {"ZOO_HOME": str(tmp_path / "home2"), "ZOO_OFFLINE": "1"}
    run_zoo("bundle", "import", str(bundle), env=other, check=True)
    run_zoo("run", name, str(image), "--out", str(tmp_path / "out2"), env=other, check=True)
    again = cv2.imread(str(tmp_path / "out2" / "street.labels.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(again, cv2.imread(str(tmp_path / "out-onnx" / "street.labels.png"),
                                                    cv2.IMREAD_UNCHANGED))  # fmt: skip
    info2 = json.loads(run_zoo("info", name, "--json", env=other, check=True).stdout)
    assert info2["labels"] == LABELS[name] and info2["input"] == info["input"]


@pytest.mark.paddleseg
def test_add_refuses_labels_that_do_not_fit_the_program(exports, tmp_path, zoo_home):
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    proc = run_zoo("add", "lite", str(exports["lite"]), "--labels", str(tmp_path / "three.txt"))
    assert proc.returncode == 1 and "names 3 classes but the program scores 4" in proc.stderr
    assert not (zoo_home / "config" / "registry.toml").exists()
    assert not (zoo_home / "cache" / "refs" / "lite.json").exists()
    # without labels: numbered classes and a generated palette, never Cityscapes names
    run_zoo("add", "lite", str(exports["lite"]), check=True)
    info = json.loads(run_zoo("info", "lite", "--json", check=True).stdout)
    assert info["labels"] == ["class_0", "class_1", "class_2", "class_3"] and len(info["palette"]) == 4
    # the export folder run by path: deploy.yaml's preprocessing, and numbered classes here too
    image = _street(tmp_path / "street.png", 90, 140, seed=2)
    out = run_zoo("run", str(exports["lite"]), str(image), "--backend", "paddle", "--out", str(tmp_path / "o"),
                  "--json", check=True).stdout  # fmt: skip
    classes = json.loads(out)[0]["classes"]
    assert classes and all(c.startswith("class_") for c in classes), classes


# ---- hostile sources: refused like a hostile pull, nothing kept ------------------------------------------------------


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _nothing_kept(home: Path, name: str) -> None:
    assert not (home / "config" / "registry.toml").exists()
    assert not (home / "cache" / "refs" / f"{name}.json").exists()
    models = home / "cache" / "models"
    assert not models.exists() or not any(models.iterdir())
    blobs = home / "cache" / "blobs"
    assert not blobs.exists() or not [p for p in blobs.iterdir() if not p.name.startswith(".")]


def test_hostile_archives_are_refused_like_a_pull(models, tmp_path, zoo_home, http_server):  # noqa: F811
    src = models.get("unet-tiny")
    program = (src / "model.json").read_bytes()
    params = (src / "model.pdiparams").read_bytes()
    link = tarfile.TarInfo("model.pdiparams")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    cases = {
        "link": (_tar([_file("model.json", program), (link, None)]), "link"),
        "dotdot": (_tar([_file("model.json", program), _file("../model.pdiparams", params)]), ".."),
        "params": (_tar([_file("model.json", program), _file("model.pdiparams", params[: len(params) // 2])]),
                   "model.pdiparams"),
    }  # fmt: skip
    for case, (data, word) in cases.items():
        archive = tmp_path / f"{case}.tar"
        archive.write_bytes(data)
        proc = run_zoo("add", "evil", str(archive))
        assert proc.returncode == 1 and word in proc.stderr, (case, proc.stderr)
        _nothing_kept(zoo_home, "evil")
    url = http_server.add("/evil.tar", cases["link"][0])
    proc = run_zoo("add", "evil", url)
    assert proc.returncode == 1 and "link" in proc.stderr, proc.stderr
    _nothing_kept(zoo_home, "evil")
    # a folder whose params file is a symbolic link is refused the same way
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / "model.json").write_bytes(program)
    (folder / "model.pdiparams").symlink_to(src / "model.pdiparams")
    proc = run_zoo("add", "evil", str(folder))
    assert proc.returncode == 1 and "link" in proc.stderr, proc.stderr
    _nothing_kept(zoo_home, "evil")


def test_add_of_a_folder_and_readd(models, tmp_path, zoo_home, http_server):  # noqa: F811
    """A plain export folder (zoo's own unet-tiny export) is added, found by name, and re-added only with --force."""
    folder = tmp_path / "export"
    folder.mkdir()
    for item in models.get("unet-tiny").iterdir():
        if item.name != "manifest.json":
            (folder / item.name).write_bytes(item.read_bytes())
    run_zoo("add", "mine", str(folder), "--labels", "camvid", check=False)  # camvid names 11 classes: refused
    assert not (zoo_home / "config" / "registry.toml").exists()
    proc = run_zoo("add", "mine", str(folder), "--palette", "voc", "--summary", "my net", check=True)
    text = (zoo_home / "config" / "registry.toml").read_text()
    again = run_zoo("add", "mine", str(folder))
    assert again.returncode == 1 and "--force" in again.stderr
    run_zoo("add", "mine", str(folder), "--force", "--summary", "my net v2", check=True)
    assert (zoo_home / "config" / "registry.toml").read_text().count('[models."mine"]') == 1
    assert "my net v2" in (zoo_home / "config" / "registry.toml").read_text() and "my net" in text
    listed = run_zoo("list", check=True).stdout
    assert "mine" in listed
    taken = run_zoo("add", "fcn", str(folder))
    assert taken.returncode == 1 and "already defined" in taken.stderr
    export = run_zoo("export", "mine")
    assert export.returncode == 1 and "plugin" in export.stderr, export.stderr
    assert proc.stdout.strip()
    # the folder is packed the same way again: after 'cache rm' a pull finds the bytes the registry pins ...
    run_zoo("cache", "rm", "mine", check=True)
    run_zoo("pull", "mine", check=True)
    # ... and a folder changed since then is refused, not silently taken
    run_zoo("cache", "rm", "mine", check=True)
    (folder / "deploy.yaml").write_text((folder / "deploy.yaml").read_text() + "\n# edited\n")
    changed = run_zoo("pull", "mine")
    assert changed.returncode == 1 and "sha256" in changed.stderr, changed.stderr
    # an archive served over HTTP, with ADE20K's names and evaluation convention
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for item in sorted(folder.iterdir()):
            tf.add(item, arcname=f"inference_model/{item.name}")
    url = http_server.add("/mine.tgz", buf.getvalue())
    got = run_zoo("add", "web", url, "--palette", "ade20k", "--dataset", "ade20k", "--json")
    assert got.returncode == 0, got.stderr
    entry = json.loads(got.stdout)["entry"]
    assert entry["reduce_zero_label"] is True and entry["palette"][:2] == [[120, 120, 120], [180, 120, 120]]
    assert json.loads(run_zoo("info", "web", "--json", check=True).stdout)["provenance"]["url"] == url


@pytest.mark.ray
@pytest.mark.slow
def test_an_added_model_runs_on_the_ray_engine_by_name(models, tmp_path, zoo_home):
    """The Ray engine ships the handle's own preprocessing and classes: its outputs equal the local engine's."""
    pytest.importorskip("ray")
    import cv2

    folder = tmp_path / "export"
    folder.mkdir()
    for item in models.get("unet-tiny").iterdir():
        if item.name != "manifest.json":
            (folder / item.name).write_bytes(item.read_bytes())
    (tmp_path / "names.txt").write_text("sky\nroad\ncar\ntree\n")
    run_zoo("add", "mine", str(folder), "--labels", str(tmp_path / "names.txt"), check=True)
    image = _street(tmp_path / "in" / "s.png", 70, 110, seed=3)
    run_zoo("run", "mine", str(image), "--out", str(tmp_path / "local"), check=True)
    run_zoo("run", "mine", str(image), "--out", str(tmp_path / "ray"), "--engine", "ray", check=True)
    local = cv2.imread(str(tmp_path / "local" / "s.labels.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "ray" / "s.labels.png"), cv2.IMREAD_UNCHANGED), local)
    summary = json.loads((tmp_path / "ray" / "s.json").read_text())
    assert set(summary["classes"]) <= {"sky", "road", "car", "tree"} and summary["architecture"] == "exported"
