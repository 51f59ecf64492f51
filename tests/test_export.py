"""zoo export: each of the five networks, random and trained weights, in Paddle Inference; safe .pdparams reading."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.discovered import BUILTIN_ARCHITECTURES
from zoo.formats import weights
from zoo.store import cache
from zoo.errors import WeightsError
from zoo.make.export import build_network, export_model

ARCHS = BUILTIN_ARCHITECTURES
SHAPE = (1, 3, 64, 128)
OTHER_SHAPE = (2, 3, 45, 61)  # another N, H and W, odd at every stride: the saved program must keep them symbolic
# Exported logits vs dygraph: max |diff| / max |logit|. Measured 0.0 here (other seeded weights give > 1); the margin is
# for Paddle Inference passes that may fuse conv+bn or reorder sums.
INFERENCE_RTOL = 1e-4


def _predictor(folder: Path):
    """A Paddle Inference predictor for a saved model, on CPU with oneDNN off (as PIR programs need)."""
    import paddle.inference as pi

    config = pi.Config(str(cache.program_file(folder)), str(folder / "model.pdiparams"))
    config.disable_mkldnn()
    config.disable_glog_info()
    return pi.create_predictor(config)


def _predict(predictor, x: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Output names and first output of one run on input ``x`` (any N, H, W: the input is reshaped to it)."""
    (name,) = predictor.get_input_names()
    assert name == "x"
    handle = predictor.get_input_handle(name)
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    predictor.run()
    names = predictor.get_output_names()
    return names, predictor.get_output_handle(names[0]).copy_to_cpu()


def paddle_inference(folder: Path, x: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Output names and first output of a saved model, on CPU with oneDNN off (as PIR programs need)."""
    return _predict(_predictor(folder), x)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, SHAPE).astype("float32")


@pytest.mark.parametrize("arch", ARCHS)
def test_export_random_logits_runs_in_paddle_inference(arch, models, x):
    """The PIR export with dynamic N/H/W runs in Paddle Inference at two input shapes and gives the logits of the
    dygraph network it was saved from (this is the suite's only jit.save round trip per network)."""
    import paddle

    folder = models.get(arch, output_op="none")
    # export_model saved build_network(arch, 19, None, seed=0) (registry num_classes 19): the same seeded weights
    net = build_network(arch, 19, None, seed=0)
    predictor = _predictor(folder)  # one predictor, reshaped between the runs
    other = np.random.default_rng(1).uniform(-1, 1, OTHER_SHAPE).astype("float32")
    for shape, data in [(SHAPE, x), (OTHER_SHAPE, other)]:
        names, out = _predict(predictor, data)
        assert len(names) == 1 and out.dtype == np.float32 and out.shape == (shape[0], 19, *shape[2:])
        assert np.isfinite(out).all() and np.abs(out).max() > 0
        with paddle.no_grad():
            expected = net(paddle.to_tensor(data)).numpy()
        assert out.shape == expected.shape
        error = float(np.abs(out - expected).max() / np.abs(expected).max())
        assert error <= INFERENCE_RTOL, (shape, error)
    manifest = cache.read_manifest(folder)
    prov = manifest["provenance"]
    assert (prov["weights"], prov["seed"], prov["output_op"], prov["format"]) == ("random", 0, "none", "model.json")
    assert (prov["architecture"], prov["num_classes"]) == (arch, 19)
    assert set(manifest["files"]) == {"model.json", "model.pdiparams", "deploy.yaml"}


@pytest.mark.parametrize("arch", ARCHS)
def test_export_from_saved_pdparams_matches_dygraph(arch, tmp_path, x):
    import paddle

    net = build_network(arch, 19, None, seed=7)
    path = tmp_path / "model.pdparams"
    paddle.save(net.state_dict(), str(path))  # the real file format, written by paddle itself
    with paddle.no_grad():
        expected = net(paddle.to_tensor(x)).numpy()

    folder = export_model(arch, weights=path, output_op="argmax")
    names, labels = paddle_inference(folder, x)
    assert len(names) == 1 and labels.dtype == np.int32 and labels.shape == (1, *SHAPE[2:])
    assert names[0].encode() in cache.program_file(folder).read_bytes()  # the program's own fetch name
    # same weights, same ops: Paddle Inference may fuse conv+bn, so allow only argmax ties to flip
    agreement = float((labels == expected.argmax(1)).mean())
    assert agreement >= 0.999, agreement
    ref = cache.get_ref(arch)["paddle"]
    assert ref["key"] == folder.name and ref["weights"] == "trained"
    assert ref["weights_sha256"] == cache.sha256_file(path) and ref["output_op"] == "argmax"
    deploy = (folder / "deploy.yaml").read_text()
    assert "output_op: argmax" in deploy and "model: model.json" in deploy


def test_export_cli_random_marks_untrained(models):
    proc = run_zoo("export", "unet-tiny", "--weights", "random", "--seed", "3", "--json", check=True)
    data = json.loads(proc.stdout)
    assert data["weights"] == "random" and data["seed"] == 3 and Path(data["path"]).is_dir()
    assert "UNTRAINED" not in proc.stdout
    listed = {m["name"]: m for m in json.loads(run_zoo("list", "--json", check=True).stdout)}
    assert listed["unet-tiny"]["untrained"] is True
    text = run_zoo("export", "unet-tiny", "--weights", "random", check=True)
    assert "UNTRAINED" in text.stderr


def test_export_legacy_program(models):
    folder = models.install("unet-tiny", legacy=True, output_op="argmax")
    assert (folder / "model.pdmodel").is_file() and not (folder / "model.json").exists()
    names, labels = paddle_inference(folder, np.zeros((2, 3, 24, 40), "float32"))
    assert labels.dtype == np.int32 and labels.shape == (2, 24, 40)
    assert names == ["arg_max_0.tmp_0"] and names[0].encode() in (folder / "model.pdmodel").read_bytes()


def test_same_seed_same_model(models):
    a = models.get("unet-tiny", seed=5)
    b = export_model("unet-tiny", weights="random", seed=5)
    assert cache.read_manifest(a)["files"]["model.pdiparams"] == cache.read_manifest(b)["files"]["model.pdiparams"]


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/zoo-pickle-ran",))


@pytest.mark.parametrize("payload", ["reduce", "exec", "module"])
def test_pickle_that_would_run_code_is_refused(tmp_path, payload):
    marker = tmp_path / "ran"
    if payload == "reduce":
        data = pickle.dumps({"w": _Boom()}, protocol=2).replace(b"/tmp/zoo-pickle-ran", str(marker).encode())
    elif payload == "exec":
        data = b"cbuiltins\nexec\n(V" + f"open({str(marker)!r}, 'w')".encode() + b"\ntR."
    else:
        data = b"\x80\x04\x95" + b"\x00" * 8 + b"\x8c\x02os\x94\x8c\x06system\x94\x93."
    path = tmp_path / "evil.pdparams"
    path.write_bytes(data)
    with pytest.raises(WeightsError) as info:
        weights.read_pdparams(path)
    assert "could run code" in str(info.value) and str(path) in str(info.value)
    assert not marker.exists()
    proc = run_zoo("export", "unet-tiny", "--weights", str(path), env={"PYTHONPATH": str(Path(__file__).parent / "plugins" / "zoo_unet_dist")})
    assert proc.returncode == 1 and "could run code" in proc.stderr and not marker.exists()
    assert not (cache.models_dir()).exists() or not any(cache.models_dir().iterdir())


@pytest.mark.parametrize(("protocol", "module"), [(2, b"numpy.core.multiarray"), (4, b"numpy._core.multiarray")])
def test_pdparams_reader_accepts_both_numpy_module_names_and_drops_name_map(tmp_path, protocol, module):
    state = {"a.weight": np.arange(6, dtype="float32").reshape(2, 3), "a._mean": np.ones(3, "int64")}
    payload = {**state, weights.NAME_MAP_KEY: {k: f"param_{i}" for i, k in enumerate(state)}}
    # protocol 2 writes module names as text lines, so the older numpy.core spelling can be swapped in
    raw = pickle.dumps(payload, protocol=protocol).replace(b"numpy._core.multiarray\n", module + b"\n")
    assert module in raw
    path = tmp_path / "w.pdparams"
    path.write_bytes(raw)
    loaded = weights.read_pdparams(path)
    assert set(loaded) == set(state)
    assert all(np.array_equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in state.items())


def test_codecs_encode_is_only_allowed_for_latin1(tmp_path):
    path = tmp_path / "w.pdparams"
    path.write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(WeightsError, match="only latin1"):
        weights.read_pdparams(path)


def test_shape_mismatch_names_key_and_both_shapes(tmp_path, models):
    net = build_network("unet", 4, None, seed=0)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    state["cls.weight"] = np.zeros((5, 8, 1, 1), "float32")
    state["extra.bias"] = np.zeros(2, "float32")
    del state["enc1._conv.bias"]
    path = tmp_path / "w.pdparams"
    weights.write_pdparams(state, path)
    with pytest.raises(WeightsError) as info:
        export_model("unet-tiny", weights=path)
    message = str(info.value)
    assert "cls.weight: file has shape [5, 8, 1, 1], network needs [4, 8, 1, 1]" in message
    assert "missing enc1._conv.bias" in message and "unexpected extra.bias" in message
    assert not cache.get_ref("unet-tiny")


def test_truncated_pdparams_is_refused(tmp_path):
    path = tmp_path / "w.pdparams"
    weights.write_pdparams({"a": np.ones(1000, "float32")}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(WeightsError, match="not a readable .pdparams file"):
        weights.read_pdparams(path)
