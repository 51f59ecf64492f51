"""zoo.runners.runtime and `zoo run`: preprocessing, both runners, load(), and the CLI on real tiny exported models.

The models are unet-tiny (the zoo-unet test plugin, seeded random weights) exported by tests/models.py — PIR with an
argmax output, and a legacy model.pdmodel with a logits output — and converted to ONNX by zoo.make.convert, once per
session. Tolerances: preprocessing 1e-6 absolute; labels exactly equal.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.models import ModelStore, model_store, models  # noqa: F401 - fixtures
from tests.test_images import street, write
from zoo.runners import runtime
from zoo.errors import BackendError, ImageError, NotCachedError, UnknownModelError
from zoo.images import Decoded, read_image
from zoo.runners.runtime import OnnxRunner, PaddleRunner, output_to_labels, preprocess
from zoo.registry.spec import CITYSCAPES_LABELS, Architecture, InputSpec

NAME = "unet-tiny"
UNET_LABELS = ("background", "road", "vehicle", "sky")
UNET_PALETTE = ((0, 0, 0), (128, 64, 128), (0, 0, 142), (70, 130, 180))
IMAGENET = InputSpec(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@pytest.fixture
def unet(models: ModelStore):
    """install(output_op, legacy) puts unet-tiny's Paddle model and its ONNX conversion into this test's ZOO_HOME."""

    def install(output_op: str = "argmax", legacy: bool = False) -> Path:
        return models.install_converted(NAME, output_op=output_op, legacy=legacy)

    return install


def reference_preprocess(bgr: np.ndarray, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> np.ndarray:
    """PaddleSeg's steps, written out plainly: BGR→RGB, /255, (x - mean) / std per channel, HWC→CHW, batch of 1."""
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    chw = np.zeros((3,) + rgb.shape[:2], np.float32)
    for c in range(3):
        chw[c] = (rgb[:, :, c] - np.float32(mean[c])) / np.float32(std[c])
    return chw[None]


def bare_onnx_labels(onnx_path: Path, bgr: np.ndarray, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> np.ndarray:
    """Labels from a bare onnxruntime session on :func:`reference_preprocess` — none of zoo's code on the way."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: reference_preprocess(bgr, mean, std)})[0]
    if np.issubdtype(out.dtype, np.integer):  # class ids [1, H, W] or [1, 1, H, W]
        return out.reshape(out.shape[-2:])
    return out[0].argmax(0)  # scores [1, C, H, W] at the input's size


def strip_metadata(src: Path, dest: Path) -> Path:
    import onnx

    model = onnx.load(str(src))
    del model.metadata_props[:]
    onnx.save(model, str(dest))
    return dest


# ---- preprocessing --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [InputSpec(), IMAGENET], ids=["paddleseg", "imagenet"])
def test_preprocess_equals_paddleseg_reference(spec: InputSpec):
    rgb = street(97, 163)  # odd sizes: no layout assumptions
    x = preprocess(rgb, spec)
    assert x.dtype == np.float32 and x.shape == (1, 3, 97, 163) and x.flags.c_contiguous
    ref = reference_preprocess(np.ascontiguousarray(rgb[..., ::-1]), spec.mean, spec.std)
    np.testing.assert_allclose(x, ref, rtol=0, atol=1e-6)


def test_preprocess_bgr_networks_and_resize_policy():
    rgb = street(60, 90)
    spec = InputSpec()
    # a BGR network takes the decoded BGR pixels as they are: PaddleSeg's reference without its channel swap
    bgr = preprocess(rgb, InputSpec(color="BGR"))
    expected = reference_preprocess(np.ascontiguousarray(rgb), spec.mean, spec.std)
    np.testing.assert_allclose(bgr, expected, rtol=0, atol=1e-6)
    resized = preprocess(rgb, InputSpec(size_policy="resize", size=(32, 48)))
    assert resized.shape == (1, 3, 32, 48)
    # PaddleSeg's Compose resizes the float image (tests/test_model_facts.py runs it as the oracle), not uint8
    floats = cv2.resize(rgb.astype(np.float32), (48, 32), interpolation=cv2.INTER_LINEAR)
    expected = ((floats / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(resized, expected, atol=1e-6)


# ---- outputs → label maps -------------------------------------------------------------------------------------------


def test_output_to_labels_handles_every_export_kind():
    ids = np.random.default_rng(0).integers(0, 19, (1, 12, 20))
    for out in (ids.astype(np.int32), ids.astype(np.int64), ids[:, None].astype(np.int32)):  # [N,H,W], [N,1,H,W]
        labels = output_to_labels(out, (12, 20))
        assert labels.dtype == np.uint8
        np.testing.assert_array_equal(labels, ids[0])
    logits = np.random.default_rng(1).normal(size=(1, 5, 12, 20)).astype(np.float32)
    np.testing.assert_array_equal(output_to_labels(logits, (12, 20)), logits[0].argmax(0))
    small = logits[:, :, ::2, ::2].copy()  # scores at half size: bilinear up, then argmax
    up = cv2.resize(small[0].transpose(1, 2, 0), (20, 12), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(output_to_labels(small, (12, 20)), up.argmax(2))
    many = np.full((1, 4, 4), 300, np.int64)
    assert output_to_labels(many, (4, 4)).dtype == np.int32  # ids past 255 are not squeezed into uint8
    with pytest.raises(BackendError, match="expects class ids"):
        output_to_labels(np.zeros((1, 4, 4), np.float32), (4, 4))


# ---- runners --------------------------------------------------------------------------------------------------------


def test_onnx_and_paddle_runners_read_names_and_agree_exactly(unet):
    import onnx

    from zoo.store import cache

    onnx_path = unet("argmax")
    ort_runner = OnnxRunner(onnx_path)
    pd_runner = PaddleRunner(cache.paddle_model_dir(NAME))
    graph = onnx.load(str(onnx_path)).graph
    assert ort_runner.input_name == graph.input[0].name == "x"
    assert ort_runner.output_names == [o.name for o in graph.output]  # read, never hard-coded
    assert pd_runner.input_name == "x" and pd_runner.output_names  # e.g. fetch_name_0
    assert ort_runner.providers == ["CPUExecutionProvider"] and ort_runner.threads == (__import__("os").cpu_count())
    # PIR program: oneDNN with the placement pass that breaks bilinear interpolation removed (zoo/runners/paddle_config.py)
    assert pd_runner.mkldnn is True and pd_runner.providers == ["paddle-cpu-onednn"]
    assert pd_runner.setup["format"] == "pir" and "onednn_placement_pass" in pd_runner.setup["deleted_passes"]
    x = preprocess(street(72, 120), IMAGENET)
    a, b = ort_runner.run(x), pd_runner.run(x)
    assert a.dtype == b.dtype == np.int32 and a.shape == b.shape == (1, 72, 120)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) > 1  # the comparison means something


def test_legacy_program_runs_with_onednn_and_logits_are_argmaxed(unet):
    unet("none", legacy=True)
    rgb = street(64, 96)
    paddle_model = runtime.load(NAME, backend="paddle", threads=1)
    onnx_model = runtime.load(NAME, threads=1)
    assert paddle_model.runner.mkldnn is True and paddle_model.providers == ["paddle-cpu-onednn"]
    assert paddle_model.runner.threads == 1 and onnx_model.runner.threads == 1
    raw = onnx_model.infer(onnx_model.prepare(rgb))
    assert raw.dtype == np.float32 and raw.shape == (1, 4, 64, 96)  # logits
    labels = onnx_model.predict(rgb)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    np.testing.assert_array_equal(labels, bare_onnx_labels(onnx_model.source, bgr, IMAGENET.mean, IMAGENET.std))
    np.testing.assert_array_equal(paddle_model.predict(rgb), labels)


def test_gpu_fails_clearly_and_never_falls_back(unet, monkeypatch: pytest.MonkeyPatch):
    import onnxruntime as ort

    from zoo.store import cache

    onnx_path = unet("argmax")
    with pytest.raises(BackendError, match="needs ONNX Runtime's CUDAExecutionProvider.*--device cpu"):
        OnnxRunner(onnx_path, device="gpu")
    with pytest.raises(BackendError, match="--device gpu needs a CUDA build of paddlepaddle"):
        PaddleRunner(cache.paddle_model_dir(NAME), device="gpu")
    # an onnxruntime that lists CUDA but silently starts the session on the CPU must fail too
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", lambda path, opts, providers: real(path, opts, providers=providers[1:]))
    with pytest.raises(BackendError, match="did not start CUDAExecutionProvider.*runs on CPUExecutionProvider"):
        OnnxRunner(onnx_path, device="gpu")


def test_int64_labels_and_other_names_from_a_handmade_onnx(tmp_path: Path):
    """release/2.4-style exports: int64 ids, [N, 1, H, W], output named save_infer_model/scale_0.tmp_0."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(5, 3, 1, 1)).astype(np.float32)
    out_name = "save_infer_model/scale_0.tmp_0"
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["logits"]),
         helper.make_node("ArgMax", ["logits"], [out_name], axis=1, keepdims=1)],
        "ids", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info(out_name, TensorProto.INT64, ["n", 1, "h", "w"])],
        initializer=[numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    path = tmp_path / "ids.onnx"
    onnx.save(model, str(path))
    with pytest.warns(UserWarning, match="carries no zoo metadata"):
        m = runtime.load(path)
    assert (m.runner.input_name, m.runner.output_names) == ("image", [out_name])
    rgb = street(40, 64)
    raw = m.infer(m.prepare(rgb))
    assert raw.dtype == np.int64 and raw.shape == (1, 1, 40, 64)
    x = reference_preprocess(np.ascontiguousarray(rgb[..., ::-1]))
    expected = np.einsum("kc,nchw->nkhw", w[:, :, 0, 0], x)[0].argmax(0)
    labels = m.predict(rgb)
    assert labels.dtype == np.uint8 and labels.shape == (40, 64)
    np.testing.assert_array_equal(labels, expected)


# ---- load() ---------------------------------------------------------------------------------------------------------


def test_load_by_name_then_predict(unet):
    unet("argmax")
    rgb = street()
    m = runtime.load(NAME)
    assert m.architecture.name == "unet" and m.num_classes == 4
    assert m.labels == UNET_LABELS and m.colors == UNET_PALETTE
    labels = m.predict(rgb)
    assert labels.dtype == np.uint8 and labels.shape == rgb.shape[:2]
    bgr = np.ascontiguousarray(rgb[..., ::-1])  # the plugin documents ImageNet mean/std; the rest is PaddleSeg's
    np.testing.assert_array_equal(labels, bare_onnx_labels(m.source, bgr, IMAGENET.mean, IMAGENET.std))
    assert len(np.unique(labels)) > 1  # the comparison means something
    np.testing.assert_array_equal(runtime.load(NAME, backend="paddle").predict(rgb), labels)
    import zoo

    np.testing.assert_array_equal(zoo.load(NAME).predict(rgb), labels)  # the public API
    with pytest.raises(ImageError, match=r"RGB uint8 array of shape \(H, W, 3\)"):
        m.predict(rgb.astype(np.float32))


def test_load_errors_say_what_to_do(unet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(UnknownModelError, match="unknown model 'unet-tinyy'; did you mean 'unet-tiny'"):
        runtime.load("unet-tinyy")
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # nothing installed yet in this test's ZOO_HOME, and no download allowed
    import zoo

    with pytest.raises(NotCachedError, match="ZOO_OFFLINE=1 forbids downloading it; run 'ZOO_OFFLINE=0 zoo pull unet-tiny'"):
        zoo.load(NAME)  # the public door; runtime.load only opens, and says which command makes what is missing
    with pytest.raises(NotCachedError, match="run 'zoo convert unet-tiny'"):
        runtime.load(NAME)
    monkeypatch.delenv("ZOO_OFFLINE")
    with pytest.raises(BackendError, match="no such ONNX model file"):
        runtime.load(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_text("not a model")
    with pytest.raises(BackendError, match="ONNX Runtime cannot load"):
        runtime.load(tmp_path / "junk.onnx")
    with pytest.raises(BackendError, match="unknown backend 'tensorrt'"):
        runtime.load(NAME, backend="tensorrt")


def test_bare_onnx_with_metadata_uses_its_preprocessing_and_labels(unet, tmp_path: Path, recwarn):
    cached = unet("argmax")
    bare = Path(shutil.copy(cached, tmp_path / "street-model.onnx"))
    m = runtime.load(bare)
    assert not [w for w in recwarn if "metadata" in str(w.message)]
    assert m.name == "street-model" and m.source == bare
    assert m.architecture.input == IMAGENET and m.labels == UNET_LABELS and m.colors == UNET_PALETTE
    rgb = street()
    np.testing.assert_array_equal(m.predict(rgb), runtime.load(NAME).predict(rgb))


def test_bare_onnx_without_metadata_warns_and_uses_defaults(unet, tmp_path: Path):
    plain = strip_metadata(unet("argmax"), tmp_path / "plain.onnx")
    with pytest.warns(UserWarning, match="carries no zoo metadata.*PaddleSeg's preprocessing.*Cityscapes"):
        m = runtime.load(plain)
    assert m.architecture.input == InputSpec() and m.labels == CITYSCAPES_LABELS and len(m.colors) == 19
    rgb = street()
    np.testing.assert_array_equal(m.predict(rgb), bare_onnx_labels(plain, np.ascontiguousarray(rgb[..., ::-1])))


def test_paddle_model_folder_by_path_reads_deploy_yaml(unet):
    from zoo.store import cache

    unet("argmax")
    folder = cache.paddle_model_dir(NAME)
    with pytest.raises(BackendError, match="is a folder; run a Paddle model folder with --backend paddle"):
        runtime.load(folder)
    with pytest.warns(runtime.MetadataWarning, match="names no classes"):  # deploy.yaml has no labels
        m = runtime.load(folder, backend="paddle")
    assert m.labels == ("class_0", "class_1", "class_2", "class_3")  # 4 classes: never Cityscapes names
    assert m.architecture.input == IMAGENET  # zoo's deploy.yaml records the input spec
    rgb = street()
    np.testing.assert_array_equal(m.predict(rgb), runtime.load(NAME).predict(rgb))


# ---- zoo run --------------------------------------------------------------------------------------------------------


def _folder_with_good_and_bad(root: Path) -> Path:
    folder = root / "shots"
    folder.mkdir()
    write(folder / "a-street.png", street())
    write(folder / "b-street.jpg", street(80, 120), cv2.IMWRITE_JPEG_QUALITY, 95)
    write(folder / "c-gray.png", street()[..., 1])
    (folder / "d-notes.png").write_text("a text file named .png\n")
    jpg = write(folder / "e-cut.jpg", street()).read_bytes()
    (folder / "e-cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    (folder / "readme.txt").write_text("not an image name: skipped")
    return folder


def test_cli_folder_run_goes_past_bad_files_and_counts_them(unet, tmp_path: Path):
    unet("argmax")
    folder = _folder_with_good_and_bad(tmp_path)
    out = tmp_path / "out"
    proc = run_zoo("run", NAME, str(folder), "--out", str(out), "--threads", "1")
    assert proc.returncode == 1, proc.stderr
    assert "2 of 5 inputs failed" in proc.stderr
    assert f"zoo: error: {folder / 'd-notes.png'}: this is a text file" in proc.stderr
    assert f"zoo: error: {folder / 'e-cut.jpg'}: the JPEG file is truncated" in proc.stderr
    assert f"warning: {folder / 'c-gray.png'}: grayscale image converted" in proc.stderr
    assert "providers CPUExecutionProvider, 1 threads" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}.{kind}" for stem in ("a-street", "b-street", "c-gray")
        for kind in ("labels.png", "color.png", "overlay.jpg", "json")
    )  # fmt: skip
    m = runtime.load(NAME)
    for stem, ext in (("a-street", "png"), ("b-street", "jpg"), ("c-gray", "png")):
        rgb = read_image(folder / f"{stem}.{ext}") if stem != "c-gray" else _quiet_read(folder / "c-gray.png")
        labels = cv2.imread(str(out / f"{stem}.labels.png"), cv2.IMREAD_UNCHANGED)
        bgr = cv2.imread(str(folder / f"{stem}.{ext}"), cv2.IMREAD_COLOR)  # gray → 3 equal channels, as zoo does
        expected = bare_onnx_labels(m.source, bgr, IMAGENET.mean, IMAGENET.std)
        np.testing.assert_array_equal(labels, expected)
        assert len(np.unique(expected)) > 1
        color = cv2.imread(str(out / f"{stem}.color.png"), cv2.IMREAD_COLOR)[..., ::-1]
        np.testing.assert_array_equal(color, m.architecture.colorize(labels))
        overlay = cv2.imread(str(out / f"{stem}.overlay.jpg"), cv2.IMREAD_COLOR)
        assert overlay.shape[1:] == rgb.shape[1:] and overlay.shape[0] > rgb.shape[0]  # the legend strip below
        summary = json.loads((out / f"{stem}.json").read_text())
        assert (summary["width"], summary["height"]) == (rgb.shape[1], rgb.shape[0])
        assert summary["model"] == NAME and summary["backend"] == "onnx"
        assert summary["providers"] == ["CPUExecutionProvider"] and summary["threads"] == 1
        assert set(summary["classes"]) <= set(UNET_LABELS) and sum(summary["classes"].values()) == pytest.approx(1, abs=1e-5)
        assert set(summary["timings_ms"]) == {"read", "preprocess", "inference", "postprocess", "write"}


def _quiet_read(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_image(path)


def test_cli_json_stdout_is_exactly_one_json_array(unet, tmp_path: Path):
    unet("argmax")
    images = [write(tmp_path / f"s{i}.png", street(64 + 8 * i, 96)) for i in range(2)]
    for backend in ("onnx", "paddle"):  # paddle prints from C++; none of it may reach stdout
        proc = run_zoo("run", NAME, *map(str, images), "--out", str(tmp_path / backend), "--backend", backend, "--json")
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)  # the whole of stdout
        assert proc.stdout.lstrip().startswith("[") and proc.stdout.rstrip().endswith("]")
        assert [d["input"] for d in data] == [str(p) for p in images]
        assert [d["height"] for d in data] == [64, 72] and data[0]["backend"] == backend
        assert data[0]["providers"] == (["CPUExecutionProvider"] if backend == "onnx" else ["paddle-cpu-onednn"])


def test_cli_gpu_fails_clearly_without_writing(unet, tmp_path: Path):
    unet("argmax")
    image = write(tmp_path / "s.png", street())
    proc = run_zoo("run", NAME, str(image), "--out", str(tmp_path / "out"), "--device", "gpu")
    assert proc.returncode == 1
    assert proc.stderr.startswith("zoo: error: --device gpu needs ONNX Runtime's CUDAExecutionProvider")
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_cli_bare_onnx_without_metadata_warns_once(unet, tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    from zoo.cli import main

    plain = strip_metadata(unet("argmax"), tmp_path / "plain.onnx")
    image = write(tmp_path / "s.png", street())
    assert main(["run", str(plain), str(image), "--out", str(tmp_path / "out"), "--json"]) == 0
    captured = capfd.readouterr()
    assert json.loads(captured.out)[0]["classes"]  # Cityscapes names
    assert set(json.loads(captured.out)[0]["classes"]) <= set(CITYSCAPES_LABELS)
    assert captured.err.count("zoo: warning:") == 1 and "carries no zoo metadata" in captured.err


# ---- the pipeline ---------------------------------------------------------------------------------------------------

WAIT = 60.0  # bound on an event a pipelined run sets at once and a run stage after stage never sets


class OrderedModel:
    """A stand-in Model whose stages wait for events another stage must set if the stages overlap.

    Inference of an image waits for the read of the next input to have started, and writing an image's labels waits
    for the next inference to have started; each records whether that happened. Run one stage after another, every
    wait would end unset: the order of events is checked, not the clock.
    """

    name, source, backend, providers, num_classes = "ordered", Path("ordered.onnx"), "onnx", ["CPUExecutionProvider"], 2
    labels = ("sky", "road")
    architecture = Architecture("ordered", "fake", labels=labels)
    colors = architecture.colors(2)[:2]  # Model.colors: one per class
    runner = SimpleNamespace(device="cpu", threads=1)
    device, threads = "cpu", 1  # Model's own fields since backends are plugins (runners need only run/describe)

    def __init__(self, next_read: list, infer_started: list) -> None:
        self.next_read, self.infer_started = next_read, infer_started  # per readable image, in input order
        self.infers = self.writes = 0  # each stage runs in one thread: its own counter is its image's index
        self.read_overlaps: list[bool] = []
        self.write_overlaps: list[bool] = []

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        return rgb

    def infer(self, x: np.ndarray) -> np.ndarray:
        k, self.infers = self.infers, self.infers + 1
        self.infer_started[k].set()
        if self.next_read[k] is not None:
            self.read_overlaps.append(self.next_read[k].wait(WAIT))
        return (x[None, :, :, 0] > 128).astype(np.int32)

    def to_labels(self, output: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        k, self.writes = self.writes, self.writes + 1
        if k + 1 < len(self.infer_started):
            self.write_overlaps.append(self.infer_started[k + 1].wait(WAIT))
        return output[0].astype(np.uint8)


def test_folder_runs_overlap_reading_inference_and_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The stages overlap: the next image is being read while one is inferred, and one is written while the next is
    inferred. Wall-clock speed is the benchmark's business (benchmarks/), not a unit test's."""
    import threading

    from zoo import images
    from zoo.engines.segment import segment_files

    paths = [tmp_path / f"{i}{'-bad' if i in (2, 5) else ''}.png" for i in range(10)]
    read_started = {p: threading.Event() for p in paths}

    def decode(path: Path) -> Decoded:
        read_started[path].set()
        if "bad" in path.name:
            raise ImageError(f"{path}: broken")
        return Decoded(street(48, 64), "PNG", [])

    monkeypatch.setattr(images, "decode", decode)
    good = [i for i, p in enumerate(paths) if "bad" not in p.name]
    model = OrderedModel([read_started[paths[i + 1]] if i + 1 < len(paths) else None for i in good],
                         [threading.Event() for _ in good])  # fmt: skip
    results = list(segment_files(model, paths, tmp_path / "out"))
    assert [r.path for r in results] == paths  # input order, failures included
    assert [r.error is not None for r in results] == [p.name.endswith("-bad.png") for p in paths]
    assert model.infers == model.writes == 8 and (tmp_path / "out" / "9.labels.png").is_file()
    assert model.read_overlaps == [True] * 7  # every inference but the last had the next read under way
    assert model.write_overlaps == [True] * 7  # every write but the last ran beside the next inference


def test_output_names_are_distinct_for_repeated_stems():
    from zoo.engines.segment import output_stems

    paths = [Path("a/x.png"), Path("b/x.png"), Path("x.jpg"), Path("y.png")]
    assert list(output_stems(paths).values()) == ["x", "x-2", "x-3", "y"]


def test_png_bytes_writes_paletted_and_16_bit_label_maps():
    from zoo.engines.segment import png_bytes

    ids = np.random.default_rng(0).integers(0, 7, (30, 50)).astype(np.uint8)
    palette = np.random.default_rng(1).integers(0, 256, (256, 3)).astype(np.uint8)
    decoded = cv2.imdecode(np.frombuffer(png_bytes(ids, palette), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    np.testing.assert_array_equal(decoded, palette[ids])
    gray = cv2.imdecode(np.frombuffer(png_bytes(ids), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(gray, ids)
    wide = (ids.astype(np.uint16) * 1000).astype(np.uint16)
    back = cv2.imdecode(np.frombuffer(png_bytes(wide), np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, wide)


def test_rerun_into_the_input_folder_skips_earlier_results(unet, tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    from zoo.cli import main

    unet("argmax")
    write(tmp_path / "s.png", street())
    assert main(["run", NAME, str(tmp_path), "--out", str(tmp_path), "--threads", "1"]) == 0
    capfd.readouterr()
    assert main(["run", NAME, str(tmp_path), "--out", str(tmp_path), "--threads", "1"]) == 0
    captured = capfd.readouterr()
    assert "skipping 3 earlier result file(s)" in captured.err and "1 image(s)" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "s.color.png", "s.json", "s.labels.png", "s.overlay.jpg", "s.png"]  # fmt: skip


# ---- inputs are checked first; --out is made only to write into --------------------------------------------------


def test_missing_input_fails_before_the_model_loads_and_makes_no_out_folder(unet, tmp_path: Path):
    unet("argmax")
    out = tmp_path / "out"
    proc = run_zoo("run", NAME, str(tmp_path / "missing.png"), "--out", str(out))
    assert proc.returncode == 1
    assert proc.stderr == f"zoo: error: {tmp_path / 'missing.png'}: no such file\n"  # no model was loaded first
    assert not out.exists()
    # a readable input beside a missing one: the missing one is reported up front, the other is segmented
    good = write(tmp_path / "s.png", street())
    proc = run_zoo("run", NAME, str(tmp_path / "missing.png"), str(good), "--out", str(out))
    assert proc.returncode == 1 and "1 of 2 inputs failed" in proc.stderr
    first_error = proc.stderr.index("no such file")
    assert first_error < proc.stderr.index("providers")  # reported before the model loaded
    assert sorted(p.name for p in out.iterdir()) == ["s.color.png", "s.json", "s.labels.png", "s.overlay.jpg"]


def test_undecodable_inputs_only_leave_no_out_folder(unet, tmp_path: Path):
    unet("argmax")
    (tmp_path / "notes.png").write_text("not an image\n")
    out = tmp_path / "out"
    proc = run_zoo("run", NAME, str(tmp_path / "notes.png"), "--out", str(out))
    assert proc.returncode == 1 and "this is a text file" in proc.stderr
    assert not out.exists()  # nothing to write, so nothing made


# ---- run outputs follow the umask --------------------------------------------------------------------------------


def test_run_outputs_follow_the_umask(unet, tmp_path: Path):
    import os

    unet("argmax")
    image = write(tmp_path / "s.png", street())
    old = os.umask(0o027)  # the child inherits it
    try:
        run_zoo("run", NAME, str(image), "--out", str(tmp_path / "out"), check=True)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()}
    assert modes == dict.fromkeys(modes, 0o640) and len(modes) == 4
