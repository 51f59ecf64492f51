"""zoo convert: Paddle → ONNX, checked against Paddle Inference, cached, deterministic, offline and quiet.

The models are the tests' ``unet-tiny`` (zoo-unet test plugin, seeded random weights), exported by ``tests/models.py``
as PIR ``model.json`` and legacy ``model.pdmodel``, ending in argmax (int32) or raw logits. Each variant is converted
once per module, in its own ZOO_HOME; tests that change the cache use their own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ZOO_VARS, run_zoo
from tests.models import ModelStore, use_unet_plugin
from zoo.store import cache
from zoo.make.convert import ConvertResult, check_onnx, check_params, convert, convert_model_dir, read_metadata
from zoo.errors import ConversionError, IntegrityError, NotCachedError

NAME = "unet-tiny"
VARIANTS = {  # variant → (output op, legacy program)
    "pir-argmax": ("argmax", False),
    "pir-none": ("none", False),
    "legacy-argmax": ("argmax", True),
}
LOGITS_RTOL = 1e-4  # ORT vs Paddle float outputs: max |diff| relative to the output's largest magnitude


@dataclass(frozen=True)
class Converted:
    variant: str
    output_op: str
    home: Path  # ZOO_HOME holding the Paddle model and its conversion
    paddle_dir: Path  # the cached Paddle model folder
    result: ConvertResult


@pytest.fixture(scope="module")
def converted(model_store: ModelStore, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Converted]:
    """Every variant of unet-tiny installed and converted once, each in its own ZOO_HOME."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        for var in ZOO_VARS:
            mp.delenv(var, raising=False)
        for key, value in use_unet_plugin().items():  # the legacy export runs in a child: it needs PYTHONPATH too
            mp.setenv(key, value)
        for variant, (op, legacy) in VARIANTS.items():
            home = tmp_path_factory.mktemp(f"convert-{variant}")
            mp.setenv("ZOO_HOME", str(home))
            folder = model_store.install(NAME, output_op=op, legacy=legacy)
            out[variant] = Converted(variant, op, home, folder, convert(NAME))
    return out


def paddle_predict(folder: Path, x: np.ndarray) -> np.ndarray:
    """Paddle Inference on CPU (oneDNN off: it breaks PIR bilinear interpolation)."""
    from paddle import inference

    config = inference.Config(str(cache.program_file(folder)), str(folder / cache.PARAMS_FILE))
    config.disable_gpu()
    config.disable_mkldnn()
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def ort_predict(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def random_input(shape: tuple[int, ...] = (2, 3, 37, 50)) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def assert_same_output(got: np.ndarray, want: np.ndarray, output_op: str) -> None:
    assert got.shape == want.shape
    if output_op == "argmax":
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, want.astype(np.int32))
    else:
        scale = max(1.0, float(np.abs(want).max()))
        assert float(np.abs(got - want).max()) <= LOGITS_RTOL * scale


def onnx_entries() -> list[Path]:
    """Everything under the cache's onnx/ folder, temporaries included."""
    return sorted(cache.onnx_dir().iterdir()) if cache.onnx_dir().is_dir() else []


# ---- conversion is faithful ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_onnx_matches_paddle_inference(converted: dict[str, Converted], variant: str) -> None:
    c = converted[variant]
    x = random_input()  # batch 2, odd height and width: every dynamic axis exercised
    got, want = ort_predict(c.result.path, x), paddle_predict(c.paddle_dir, x)
    assert_same_output(got, want, c.output_op)
    assert got.shape == ((2, 37, 50) if c.output_op == "argmax" else (2, 4, 37, 50))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_metadata_is_stamped(converted: dict[str, Converted], variant: str) -> None:
    import onnx

    from zoo.registry import plugins

    c = converted[variant]
    arch = plugins.get_architecture("unet")
    manifest = cache.read_json(c.paddle_dir / cache.MANIFEST)
    program = cache.program_file(c.paddle_dir).name
    assert program == ("model.pdmodel" if variant.startswith("legacy") else "model.json")
    meta = read_metadata(c.result.path)
    assert meta["name"] == NAME
    assert meta["paddle_key"] == c.paddle_dir.name
    assert meta["paddle_files"] == {n: manifest["files"][n]["sha256"] for n in (program, "model.pdiparams")}
    assert meta["architecture"] == "unet"
    assert meta["input"] == arch.input.as_dict()
    assert meta["input"]["mean"] == [0.485, 0.456, 0.406] and meta["input"]["color"] == "RGB"
    assert meta["output_op"] == c.output_op
    assert meta["num_classes"] == 4
    assert meta["labels"] == ["background", "road", "vehicle", "sky"]
    assert meta["palette"] == [[0, 0, 0], [128, 64, 128], [0, 0, 142], [70, 130, 180]]
    assert meta["opset"] == 11
    assert meta["format"] == "1"
    assert meta["paddle2onnx_version"] == "2.1.0" and meta["paddle_version"].startswith("3.")
    assert meta["zoo_version"]
    model = onnx.load(str(c.result.path))
    raw = {p.key: p.value for p in model.metadata_props}
    assert json.loads(raw["zoo.labels"]) == meta["labels"] and raw["zoo.output_op"] == c.output_op
    (value_in,), (value_out,) = model.graph.input, model.graph.output
    assert [d.dim_param or d.dim_value for d in value_in.type.tensor_type.shape.dim] == ["batch", 3, "height", "width"]
    out_dims = [d.dim_param or d.dim_value for d in value_out.type.tensor_type.shape.dim]
    assert out_dims == (["batch", "height", "width"] if c.output_op == "argmax" else ["batch", 4, "height", "width"])


def test_cache_entry_and_ref(converted: dict[str, Converted], monkeypatch: pytest.MonkeyPatch) -> None:
    c = converted["pir-argmax"]
    monkeypatch.setenv("ZOO_HOME", str(c.home))
    assert c.result.path == cache.onnx_model_path(NAME) == cache.onnx_dir() / c.result.path.parent.name / "model.onnx"
    assert c.result.sha256 == cache.sha256_file(c.result.path) and not c.result.cached
    assert cache.check_tree(c.result.path.parent) == []
    ref = cache.get_ref(NAME)["onnx"]
    assert ref["key"] == c.result.path.parent.name and ref["file"] == "model.onnx"
    assert ref["source"] == "converted" and ref["from"] == c.paddle_dir.name and ref["opset"] == 11
    assert ref["sha256"] == c.result.sha256
    provenance = cache.read_manifest(c.result.path.parent)["provenance"]
    assert provenance["from"] == c.paddle_dir.name and provenance["output_op"] == "argmax"


# ---- cached, deterministic, keyed by opset ---------------------------------------------------------------------------

_CACHED_RUN = """
import json, sys, time
from zoo.make.convert import convert
times = []
for _ in range(3):
    start = time.perf_counter()
    result = convert(sys.argv[1])
    times.append(time.perf_counter() - start)
heavy = sorted(m for m in ("paddle", "paddle2onnx", "onnx", "onnxruntime") if m in sys.modules)
print(json.dumps({"cached": result.cached, "sha256": result.sha256, "times": times, "heavy": heavy}))
"""


def test_second_convert_is_instant_and_imports_nothing(converted: dict[str, Converted]) -> None:
    c = converted["legacy-argmax"]
    env = {**use_unet_plugin(), "ZOO_HOME": str(c.home)}
    proc = subprocess.run([sys.executable, "-c", _CACHED_RUN, NAME], capture_output=True, text=True,
                          env={**_clean_env(), **env}, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["cached"] and report["sha256"] == c.result.sha256
    assert report["heavy"] == []  # neither paddle, paddle2onnx, onnx nor onnxruntime was imported: no conversion


def test_force_reconverts_to_the_same_bytes(converted: dict[str, Converted], monkeypatch: pytest.MonkeyPatch) -> None:
    c = converted["pir-argmax"]
    monkeypatch.setenv("ZOO_HOME", str(c.home))
    again = convert(NAME, force=True)
    assert not again.cached
    assert again.sha256 == c.result.sha256 and again.path == c.result.path
    assert convert(NAME).cached


def test_opset_is_part_of_the_cache_key(converted: dict[str, Converted], monkeypatch: pytest.MonkeyPatch) -> None:
    c = converted["pir-none"]
    monkeypatch.setenv("ZOO_HOME", str(c.home))
    newer = convert(NAME, opset=13)
    assert not newer.cached and newer.path != c.result.path
    assert read_metadata(newer.path)["opset"] == 13
    assert cache.onnx_model_path(NAME) == newer.path
    back = convert(NAME)  # the opset-11 entry is still there: found by its provenance, and the ref moves back
    assert back.cached and back.path == c.result.path and cache.onnx_model_path(NAME) == c.result.path
    assert_same_output(ort_predict(newer.path, random_input()), ort_predict(back.path, random_input()), "none")


# ---- the CLI ---------------------------------------------------------------------------------------------------------


def test_cli_json_stdout_is_one_document(models: ModelStore, converted: dict[str, Converted]) -> None:
    models.install(NAME, legacy=True)  # the legacy path is paddle2onnx's noisiest
    proc = run_zoo("convert", NAME, "--json", check=True)
    doc = json.loads(proc.stdout)  # raises if anything but one JSON document is on stdout
    assert isinstance(doc, dict) and proc.stdout.startswith("{") and proc.stdout.rstrip().endswith("}")
    assert doc["name"] == NAME and doc["cached"] is False and doc["opset"] == 11
    assert doc["sha256"] == converted["legacy-argmax"].result.sha256  # same bytes in another process and ZOO_HOME
    assert Path(doc["path"]) == cache.onnx_model_path(NAME)
    assert doc["sha256"] == cache.sha256_file(Path(doc["path"]))
    again = json.loads(run_zoo("convert", NAME, "--json", check=True).stdout)
    assert again["cached"] is True and again["sha256"] == doc["sha256"]


def test_cli_converts_a_folder(model_store: ModelStore, tmp_path: Path, converted: dict[str, Converted]) -> None:
    src = model_store.get(NAME, output_op="none")
    folder = tmp_path / "exported"
    folder.mkdir()
    for name in ("model.json", "model.pdiparams", "deploy.yaml"):  # a plain folder: no manifest
        shutil.copy(src / name, folder / name)
    proc = run_zoo("convert", str(folder), "--json", check=True)
    doc = json.loads(proc.stdout)
    out = tmp_path / "exported.onnx"  # written beside the folder, which is left untouched
    assert Path(doc["path"]) == out and doc["sha256"] == cache.sha256_file(out)
    assert sorted(p.name for p in folder.iterdir()) == ["deploy.yaml", "model.json", "model.pdiparams"]
    meta = read_metadata(out)
    assert meta["output_op"] == "none" and meta["input"]["mean"] == [0.485, 0.456, 0.406]  # from deploy.yaml
    assert "name" not in meta and "architecture" not in meta
    assert meta["paddle_files"]["model.json"] == cache.sha256_file(folder / "model.json")
    x = random_input()
    assert_same_output(ort_predict(out, x), paddle_predict(folder, x), "none")
    assert not cache.onnx_dir().exists()  # a folder conversion leaves the cache alone


def test_convert_model_dir_with_architecture(models: ModelStore, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "unet.onnx"
    convert_model_dir(models.get(NAME, legacy=True), out, architecture="unet")
    meta = read_metadata(out)
    assert meta["architecture"] == "unet" and meta["labels"][1] == "road" and meta["output_op"] == "argmax"
    assert sorted(p.name for p in out.parent.iterdir()) == ["unet.onnx"]  # no temporary left beside it


# ---- refused before converting, checked after ------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_damaged_params_refused_before_conversion(models: ModelStore, damage: str) -> None:
    folder = models.install(NAME)
    params = folder / "model.pdiparams"
    if damage == "truncated":
        params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])
    else:
        params.unlink()
    with pytest.raises(IntegrityError, match=r"refusing to convert: .*model\.pdiparams"):
        convert(NAME)
    assert onnx_entries() == [] and "onnx" not in cache.get_ref(NAME)
    proc = run_zoo("convert", NAME, "--json")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "zoo: error: refusing to convert" in proc.stderr and "model.pdiparams" in proc.stderr
    assert onnx_entries() == []


def test_truncated_params_with_a_matching_hash_are_refused(model_store: ModelStore, tmp_path: Path) -> None:
    """A truncated download whose hash was recorded as-is (trust on first use) still fails the structure walk."""
    src = model_store.get(NAME)
    assert check_params(src / "model.pdiparams") > 0
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(src / "model.json", folder / "model.json")
    data = (src / "model.pdiparams").read_bytes()
    (folder / "model.pdiparams").write_bytes(data[: len(data) - 7])
    with pytest.raises(IntegrityError, match="truncated"):
        convert_model_dir(folder, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_paddle2onnx_output_without_weights_fails_the_check(model_store: ModelStore, tmp_path: Path) -> None:
    """paddle2onnx exits 0 on a PIR model with no params file; check_onnx is what catches it."""
    from zoo.make import convert as convert_mod

    src = model_store.get(NAME)
    raw = convert_mod._run_paddle2onnx(src / "model.json", tmp_path / "absent.pdiparams", 11)
    path = tmp_path / "weightless.onnx"
    path.write_bytes(raw)
    with pytest.raises(ConversionError, match="onnx.checker"):
        check_onnx(path)


def test_paddle2onnx_failure_is_a_conversion_error(model_store: ModelStore, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.json").write_text('{"base_code": {"magic": "pir", "version": 4}, "program": {}}')
    shutil.copy(model_store.get(NAME) / "model.pdiparams", folder / "model.pdiparams")
    with pytest.raises(ConversionError, match=r"paddle2onnx failed on .*model\.json \(exit \d+\): .*regions"):
        convert_model_dir(folder, tmp_path / "out.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no output, no scratch folder left


def test_check_onnx_refuses_external_data(converted: dict[str, Converted], tmp_path: Path) -> None:
    import onnx
    from onnx import external_data_helper

    check_onnx(converted["pir-none"].result.path)  # the real thing passes
    model = onnx.load(str(converted["pir-none"].result.path))
    external_data_helper.convert_model_to_external_data(model, location="weights.bin", size_threshold=0,
                                                        convert_attribute=True)  # fmt: skip
    onnx.save_model(model, str(tmp_path / "split.onnx"))
    with pytest.raises(ConversionError, match="external data"):
        check_onnx(tmp_path / "split.onnx")
    # an initializer (not a Constant node) kept outside the file
    weight = onnx.numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])], [weight],
    )  # fmt: skip
    small = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 11)])
    onnx.save_model(small, str(tmp_path / "init.onnx"), save_as_external_data=True, location="init.bin",
                    size_threshold=0)  # fmt: skip
    with pytest.raises(ConversionError, match=r"1 tensor\(s\) as external data \(w\)"):
        check_onnx(tmp_path / "init.onnx")
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    with pytest.raises(ConversionError, match="not a readable ONNX model"):
        check_onnx(tmp_path / "garbage.onnx")


def test_not_cached(models: ModelStore) -> None:
    with pytest.raises(NotCachedError, match=f"zoo pull {NAME}"):
        convert(NAME)
    assert onnx_entries() == []


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ZOO_VARS}


# ---- issue 12 item 8: a damaged conversion is repaired, and every advice is a command that fixes it ------------------


def _flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at : at + 16] = bytes(b ^ 0xFF for b in data[at : at + 16])
    path.write_bytes(bytes(data))


def _advice(stderr: str) -> list[str]:
    import re

    commands = re.findall(r"run '([^']+)'", stderr)
    assert commands and "NAME" not in stderr.split("zoo: error:", 1)[1], stderr  # no placeholder left to fill in
    return commands


def _run_advice(stderr: str) -> list[str]:
    import shlex

    commands = _advice(stderr)
    for command in commands:
        argv = shlex.split(command)
        if argv[0] == "zoo":
            run_zoo(*argv[1:], check=True)
        else:  # e.g. rm -r of an entry no model uses
            subprocess.run(argv, check=True)
    return commands


def test_convert_repairs_a_damaged_cached_onnx(models: ModelStore) -> None:
    path = models.install_converted(NAME)
    original = path.read_bytes()  # the session's conversion, copied in: what a repair must restore
    digest = cache.sha256_bytes(original)
    _flip(path)
    again = json.loads(run_zoo("convert", NAME, "--json", check=True).stdout)
    assert not again["cached"] and again["sha256"] == digest and Path(again["path"]).read_bytes() == original

    _flip(path)
    forced = json.loads(run_zoo("convert", NAME, "--force", "--json", check=True).stdout)
    assert forced["sha256"] == digest and Path(forced["path"]).read_bytes() == original

    _flip(path)
    verify = run_zoo("cache", "verify")
    assert verify.returncode == 1
    assert _run_advice(verify.stderr) == [f"zoo convert {NAME} --force"]
    assert run_zoo("cache", "verify", check=True).stdout.startswith("ok")
    assert cache.onnx_model_path(NAME).read_bytes() == original


def test_refusal_advice_rebuilds_the_damaged_paddle_model(models: ModelStore) -> None:
    folder = models.install(NAME, seed=4)
    original = (folder / "model.pdiparams").read_bytes()
    _flip(folder / "model.pdiparams", at=len(original) - 40)
    refused = run_zoo("convert", NAME)
    assert refused.returncode == 1 and "refusing to convert" in refused.stderr
    assert _run_advice(refused.stderr) == [f"zoo export {NAME} --weights random --seed 4"]
    damaged, folder = folder, cache.paddle_model_dir(NAME)  # the same weights again (the program's key may differ: PIR names)
    assert (folder / "model.pdiparams").read_bytes() == original
    run_zoo("convert", NAME, check=True)
    _flip(folder / "model.pdiparams", at=len(original) - 40)
    verify = run_zoo("cache", "verify")
    assert verify.returncode == 1
    advice = _run_advice(verify.stderr)
    assert f"zoo export {NAME} --weights random --seed 4" in advice
    # the re-export may land under another key (PIR names differ between processes): the damaged copy is then unused
    assert set(advice) <= {f"zoo export {NAME} --weights random --seed 4", f"rm -r {damaged}"}
    assert run_zoo("cache", "verify", check=True).stdout.startswith("ok")


def test_external_data_inside_a_function_is_named(tmp_path: Path) -> None:
    import onnx
    from onnx import helper

    weight = onnx.numpy_helper.from_array(np.ones((4,), np.float32), "w")
    weight.data_location = onnx.TensorProto.EXTERNAL
    del weight.external_data[:]
    weight.external_data.add(key="location", value="w.bin")
    weight.ClearField("raw_data")
    (tmp_path / "w.bin").write_bytes(np.ones(4, np.float32).tobytes())
    function = helper.make_function(
        "local", "AddW", ["a"], ["b"],
        [helper.make_node("Constant", [], ["w"], value=weight), helper.make_node("Add", ["a", "w"], ["b"])],
        [helper.make_opsetid("", 13)],
    )  # fmt: skip
    graph = helper.make_graph(
        [helper.make_node("AddW", ["x"], ["y"], domain="local")], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4])],
    )  # fmt: skip
    model = helper.make_model(graph, functions=[function],
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)])  # fmt: skip
    onnx.save_model(model, str(tmp_path / "f.onnx"))
    with pytest.raises(ConversionError, match=r"1 tensor\(s\) as external data \(w\)") as info:
        check_onnx(tmp_path / "f.onnx")
    assert "pdiparams" not in str(info.value)
