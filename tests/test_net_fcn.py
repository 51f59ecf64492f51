"""FCN-HRNet_W18: parameter layout, output contract, static export and (optionally) parity with PaddleSeg.

The parity test needs the ``paddleseg`` package importable (e.g. ``PYTHONPATH=/tmp/pseg:/tmp/pseg_deps``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import paddle
import pytest

ROOT = Path(__file__).resolve().parents[1]
try:
    from zoo_fcn.network import build
except ImportError:  # plugins not installed: use the source tree
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
    from zoo_fcn.network import build

REFERENCE = ROOT / "tests" / "reference" / "fcn.params.tsv"
CONV_STD = 0.03  # HRNet's many residual sums blow up larger weights; this keeps logits around 1-10
RTOL = 1e-5  # max |diff| / max |logit|; measured 0.0 (bit-exact) against PaddleSeg and the jit export


def _random_weights(model: paddle.nn.Layer, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random values for every state-dict entry, with BN statistics far from identity."""
    rng = np.random.default_rng(seed)
    weights = {}
    for key, value in model.state_dict().items():
        shape = value.shape
        if key.endswith(("_variance", "_batch_norm.weight")):
            array = rng.uniform(0.5, 1.5, shape)
        elif key.endswith(("_mean", "bias")):
            array = rng.normal(0.0, 0.1, shape)
        else:
            array = rng.normal(0.0, CONV_STD, shape)
        weights[key] = array.astype("float32")
    return weights


def _relative_diff(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def _input(shape: tuple[int, ...], seed: int = 1) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(seed).normal(size=shape).astype("float32"))


@pytest.fixture(scope="module")
def model() -> paddle.nn.Layer:
    net = build(num_classes=19)
    net.set_state_dict(_random_weights(net))
    net.eval()
    return net


def test_state_dict_matches_paddleseg_reference(model):
    lines = REFERENCE.read_text().splitlines()
    expected = [tuple(line.split("\t")) for line in lines[1:]]
    actual = [(k, str(list(v.shape)), str(v.dtype).removeprefix("paddle.")) for k, v in model.state_dict().items()]
    assert len(actual) == len(expected) == 1533
    assert actual == expected


def test_backbone_concatenates_all_branches_at_stride_4(model):
    with paddle.no_grad():
        features = model.backbone(_input((1, 3, 64, 128)))
    assert features.shape == [1, 18 + 36 + 72 + 144, 16, 32]


@pytest.mark.parametrize("shape", [(1, 3, 64, 128), (2, 3, 45, 61)])
def test_eval_returns_main_logits_at_input_size(model, shape):
    with paddle.no_grad():
        logits = model(_input(shape))
    assert isinstance(logits, paddle.Tensor)
    assert logits.shape == [shape[0], 19, *shape[2:]]
    assert logits.dtype == paddle.float32
    assert np.isfinite(logits.numpy()).all()


def test_jit_save_with_dynamic_shape_matches_dygraph(model, tmp_path):
    spec = paddle.static.InputSpec([None, 3, None, None], "float32", "x")
    paddle.jit.save(model, str(tmp_path / "model"), input_spec=[spec])
    loaded = paddle.jit.load(str(tmp_path / "model"))
    loaded.eval()
    for shape in [(1, 3, 32, 64), (2, 3, 45, 37)]:  # batch, height and width all vary
        x = _input(shape)
        with paddle.no_grad():
            expected = model(x).numpy()
            actual = loaded(x).numpy()
        assert actual.shape == expected.shape
        assert _relative_diff(actual, expected) <= RTOL


@pytest.mark.paddleseg
def test_numerics_match_paddleseg(model):
    pytest.importorskip("paddleseg")
    from paddleseg.models import FCN
    from paddleseg.models.backbones import HRNet_W18

    reference = FCN(num_classes=19, backbone=HRNet_W18(), backbone_indices=[-1])
    reference.set_state_dict(_random_weights(reference, seed=2))
    missing, unexpected = model.set_state_dict(reference.state_dict())
    assert not missing and not unexpected
    reference.eval()
    for shape in [(1, 3, 64, 128), (2, 3, 45, 61)]:  # odd sizes exercise 'same' padding and resizing
        x = _input(shape)
        with paddle.no_grad():
            expected = reference(x)[0].numpy()
            actual = model(x).numpy()
        assert np.abs(expected).max() > 0.1  # weights big enough for the comparison to mean something
        assert _relative_diff(actual, expected) <= RTOL
