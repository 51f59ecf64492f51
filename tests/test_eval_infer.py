"""Sliding-window and multi-scale/flip inference: zoo on the exported ONNX model vs PaddleSeg's own
``slide_inference`` / ``aug_inference`` (``paddleseg.core.infer``, the oracle) on the same dygraph network."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.measure import evaluation, inference
from zoo.runners import runtime
from zoo.errors import EvalError
from zoo.synthetic import street_scene

H, W = 96, 160


def _input() -> np.ndarray:
    return runtime.preprocess(street_scene(H, W, seed=4), runtime.InputSpec())


@pytest.fixture
def pair(models):
    """zoo's ONNX model (logits) and PaddleSeg-callable dygraph network with the same seeded weights."""
    pytest.importorskip("paddleseg.core.infer")
    import paddle

    from zoo.make.export import build_network

    models.install_converted("bisenet", output_op="none")
    model = runtime.load("bisenet", backend="onnx")
    net = build_network("bisenet", 19, None, seed=0)  # what export_model(weights="random", seed=0) saved

    def dygraph(im):  # PaddleSeg models return a list of logits
        with paddle.no_grad():
            return [net(im)]

    x = _input()
    whole = dygraph(paddle.to_tensor(x))[0].numpy()
    np.testing.assert_allclose(model.infer(x), whole, rtol=0, atol=1e-5 * np.abs(whole).max())  # same network
    return model, dygraph


@pytest.mark.paddleseg
@pytest.mark.parametrize(
    "options",
    [
        evaluation.Options("slide", crop=(64, 96), stride=(48, 64)),
        evaluation.Options("slide", crop=(64, 64), stride=(64, 64)),  # windows that just touch
        evaluation.Options("whole", scales=(0.75, 1.0, 1.25), flip=True),
        evaluation.Options("slide", crop=(64, 96), stride=(32, 48), scales=(0.5, 1.0), flip=True),
    ],
    ids=["slide", "slide-touching", "aug", "aug-slide"],
)
def test_scores_match_paddleseg_infer(pair, options):
    import paddle
    from paddleseg.core import infer

    model, dygraph = pair
    x = _input()
    im = paddle.to_tensor(x)
    (ch, cw), (sh, sw) = options.crop or (0, 0), options.stride or (0, 0)
    if options.augmented:
        _, expected = infer.aug_inference(dygraph, im, trans_info=[], scales=list(options.scales),
                                          flip_horizontal=options.flip, is_slide=options.mode == "slide",
                                          crop_size=(cw, ch), stride=(sw, sh))  # fmt: skip  (PaddleSeg: (w, h))
        got = inference.aug_scores(model, x, options)
    else:
        expected = infer.slide_inference(dygraph, im, crop_size=(cw, ch), stride=(sw, sh))
        got = inference.slide_scores(model, x, options.crop, options.stride)
    expected = expected.numpy()
    assert got.shape == expected.shape == (1, 19, H, W)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_slide_on_argmax_model_says_how_to_export(models):
    models.install_converted("bisenet")  # --output-op argmax: class ids
    model = runtime.load("bisenet", backend="onnx")
    with pytest.raises(EvalError, match="--output-op none"):
        inference.slide_scores(model, _input(), (64, 64), (32, 32))
    with pytest.raises(EvalError, match="--output-op none"):
        inference.aug_scores(model, _input(), evaluation.Options(flip=True))
