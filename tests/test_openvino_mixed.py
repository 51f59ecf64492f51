"""OpenVINO bf16 with some layers kept in f32 (zoo.runners.openvino_mixed) on real seeded exports.

The expected outputs come from OpenVINO itself: the same model compiled whole in f32, and the runtime model's own
record of the precision each convolution executed in. The search is run with real runners and label comparisons.
"""

from __future__ import annotations

import numpy as np
import pytest

from zoo.errors import BackendError
from zoo.runners.runtime import preprocess
from zoo.synthetic import street_scene

ov = pytest.importorskip("openvino", reason="the openvino backend's tests need: pip install 'zoo[openvino]'")
from zoo.runners import openvino as backend  # noqa: E402
from zoo.runners import openvino_mixed as mixed  # noqa: E402

SIZE = (64, 128)


def _needs_bf16() -> None:
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bfloat16 for OpenVINO")


def _scenes(name: str, count: int = 2, seed: int = 0) -> list[np.ndarray]:
    from zoo.registry.plugins import get_architecture

    spec = get_architecture(name).input
    return [preprocess(street_scene(*SIZE, seed=seed * 1000 + i), spec) for i in range(count)]


def test_ranges_are_parsed_merged_and_nonsense_is_refused():
    assert mixed.parse("56-63") == ((56, 63),)
    assert mixed.parse("60-70, 3-5,4-8") == ((3, 8), (60, 70))
    assert mixed.text([(60, 70), (3, 5), (4, 8)]) == "3-8,60-70"
    for bad in ("5-3", "4-4", "a-b", "7", "", "-3", "3-"):
        with pytest.raises(BackendError, match="f32_layers takes ranges"):
            mixed.parse(bad)


@pytest.mark.parametrize("name, ranges", [("bisenet", ((5, 17), (30, 41))), ("deeplabv3p", ((12, 13), (40, 66)))])
def test_pieces_all_in_f32_give_the_unsplit_models_labels(models, name, ranges):
    """Cut inside residual blocks, between bisenet's two branches and across deeplabv3p's decoder skip, and run every
    piece in f32: the labels are the whole model's, so every tensor reaches the piece that reads it."""
    path = models.install_converted(name)
    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape([1, 3, *SIZE])
    config = {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": "f32"}
    whole = core.compile_model(model, "CPU", config)
    pieces = mixed.compile_pieces(core, model, ranges, "f32", config, ov)
    assert len(pieces.pieces) == 5  # before, inside, between, inside, after the two ranges
    assert sum(len(p.reads) for p in pieces.pieces) >= 4  # tensors handed from piece to piece
    for x in _scenes(name):
        got, want = pieces.run(x), whole(x)[0]
        assert got.shape == want.shape and len(np.unique(want)) > 1
        assert np.mean(got == want) >= 0.9999, f"{np.mean(got != want):.4%} of the labels differ"


def test_the_runner_keeps_the_named_layers_in_f32_and_says_so(models):
    _needs_bf16()
    path = models.install_converted("deeplabv3p")
    x = _scenes("deeplabv3p", 1)[0]
    tail = backend.open_runner(path, threads=1, precision="bf16", options={"f32_layers": "60-70"})
    tail.run(x)
    ran = tail.describe()
    assert tail.layer_count(x.shape) == 70  # every layer of deeplabv3p is a convolution
    assert ran["f32_layers"] == "60-70" and ran["pieces"] == 2
    assert ran["convolution_precisions"] == {"bf16": 60, "fp32": 10}  # what the compiled pieces executed
    assert ran["precision"] == "bf16" and ran["requested_precision"] == "bf16"

    everything = backend.open_runner(path, threads=1, precision="bf16", options={"f32_layers": "0-70"})
    fp32 = backend.open_runner(path, threads=1, precision="fp32")
    np.testing.assert_array_equal(everything.run(x), fp32.run(x))  # all of the work in f32: float32's labels
    assert everything.describe()["convolution_precisions"] == {"fp32": 70}

    with pytest.raises(BackendError, match="the model has 70 layers"):
        backend.open_runner(path, threads=1, precision="bf16", options={"f32_layers": "60-71"}).run(x)
    with pytest.raises(BackendError, match="leave it out"):
        backend.open_runner(path, threads=1, precision="fp32", options={"f32_layers": "60-70"})
    with pytest.raises(BackendError, match="no option turbo; it takes f32_layers"):
        backend.open_runner(path, threads=1, precision="bf16", options={"turbo": 1})


def test_the_search_keeps_the_shortest_tail_that_reaches_the_aim(models):
    from zoo.runners import runtime

    _needs_bf16()
    path = models.install_converted("deeplabv3p")
    xs = _scenes("deeplabv3p", 2, seed=7)

    def make(precision, options):
        return runtime.load(path, backend="openvino", precision=precision, threads=1, options=options).runner

    def agreement(refs, outs):
        return min(float(np.mean(a == b)) for a, b in zip(refs, outs))

    refs = [make("fp32", None).run(x) for x in xs]
    plain = agreement(refs, [make("bf16", None).run(x) for x in xs])
    assert plain < 1.0, "seeded bf16 must flip some labels for this test to mean anything"

    enough = mixed.search(make, xs, agreement, plain, "bf16")
    assert enough.options is None and enough.agreement == plain and "no layer needs f32" in enough.note
    assert mixed.search(make, xs, agreement, 1.0, "int8") is None  # nothing to search in int8

    found = mixed.search(make, xs, agreement, 1.0, "bf16", max_share=1.0)  # the whole tail is float32 at worst
    assert found.options is not None and found.agreement == 1.0
    start = int(found.options["f32_layers"].split("-")[0])
    assert found.options["f32_layers"] == f"{start}-70" and found.tried[-1] == (found.options["f32_layers"], 1.0)
    assert all(value < 1.0 for _, value in found.tried[:-1])  # every shorter tail fell short
    assert [int(t.split("-")[0]) for t, _ in found.tried] == sorted((int(t.split("-")[0]) for t, _ in found.tried),
                                                                     reverse=True)  # growing tails  # fmt: skip
    again = agreement(refs, [make("bf16", found.options).run(x) for x in xs])  # measured afresh
    assert again == 1.0


def test_zoo_load_and_the_paddle_frontend_runner_take_the_option_too(models):
    """The Python API passes runner options on, and ``openvino-paddle`` (a legacy program, no ONNX) runs pieces as
    the ONNX runner does: all of bisenet's layers kept in f32 give its float32 labels."""
    import zoo

    _needs_bf16()
    models.install_converted("deeplabv3p")
    loaded = zoo.load("deeplabv3p", backend="openvino", precision="bf16", options={"f32_layers": "60-70"})
    assert loaded.runner.describe()["f32_layers"] == "60-70"

    folder = models.get("bisenet", legacy=True)
    x = _scenes("bisenet", 1)[0]
    fp32 = backend.open_paddle_runner(folder, threads=1)
    count = fp32.layer_count(x.shape)
    kept = backend.open_paddle_runner(folder, threads=1, precision="bf16", options={"f32_layers": f"0-{count}"})
    np.testing.assert_array_equal(kept.run(x), fp32.run(x))
    assert kept.describe()["convolution_precisions"] == {"fp32": fp32.describe()["convolution_precisions"]["fp32"]}
