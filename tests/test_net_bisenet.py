"""BiSeNetV2 network: PaddleSeg's state-dict layout, output contract, jit export, and (if installed) numeric parity."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference" / "bisenet.params.tsv"
INPUT_SHAPE = (1, 3, 64, 128)  # the semantic branch has output stride 32
ODD_SHAPE = (2, 3, 67, 101)  # not a multiple of 32: "same" padding and ceil sizes must line up in the BGA layer
RTOL = 1e-5  # max |diff| / max |logit|

try:
    from zoo_bisenet.network import build
except ImportError:  # running from a plain checkout, before the plugins are installed
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
    from zoo_bisenet.network import build


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def _randn(shape, seed: int) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


@pytest.fixture(scope="module")
def model():
    paddle.seed(0)
    net = build(num_classes=19)
    net.eval()
    return net


@pytest.fixture(scope="module")
def image():
    return _randn(INPUT_SHAPE, 0)


def test_state_dict_matches_paddleseg_reference(model):
    with REFERENCE.open(newline="") as f:
        expected = [(row["key"], row["shape"], row["dtype"]) for row in csv.DictReader(f, delimiter="\t")]
    actual = [
        (key, str(list(value.shape)), str(value.dtype).replace("paddle.", ""))
        for key, value in model.state_dict().items()
    ]
    assert [key for key, _, _ in actual] == [key for key, _, _ in expected]
    assert actual == expected
    assert sum(int(np.prod(v.shape)) for v in model.state_dict().values()) == 2_532_215


def test_eval_returns_main_logits_at_input_size(model, image):
    out = model(image)
    assert isinstance(out, paddle.Tensor)
    assert list(out.shape) == [INPUT_SHAPE[0], 19, *INPUT_SHAPE[2:]]
    assert out.dtype == paddle.float32
    assert np.isfinite(out.numpy()).all()


def test_eval_accepts_sizes_not_divisible_by_32(model):
    out = model(_randn(ODD_SHAPE, 3))
    assert list(out.shape) == [ODD_SHAPE[0], 19, *ODD_SHAPE[2:]]


@pytest.mark.filterwarnings("ignore:When training, we now always track global mean and variance")
def test_train_returns_main_and_four_auxiliary_logits(model, image):
    # A training-mode forward updates BN running statistics: restore them for the tests sharing the module model.
    saved = {key: value.numpy().copy() for key, value in model.state_dict().items()}
    model.train()
    try:
        with paddle.no_grad():
            outs = model(image)
    finally:
        model.eval()
        model.set_state_dict(saved)
    assert len(outs) == 5
    assert all(list(o.shape) == [INPUT_SHAPE[0], 19, *INPUT_SHAPE[2:]] for o in outs)


def test_jit_save_with_dynamic_shape_matches_dygraph(model, tmp_path):
    from paddle.static import InputSpec

    prefix = str(tmp_path / "bisenet")
    paddle.jit.save(model, prefix, input_spec=[InputSpec([None, 3, None, None], "float32", "x")])
    loaded = paddle.jit.load(prefix)
    loaded.eval()
    # Other N, H, W than any traced before: the exported program must keep them symbolic.
    for shape in [INPUT_SHAPE, (2, 3, 96, 64), ODD_SHAPE]:
        x = _randn(shape, 1)
        expected = model(x).numpy()
        actual = loaded(x)
        actual = (actual[0] if isinstance(actual, (list, tuple)) else actual).numpy()
        assert actual.shape == expected.shape
        assert _relative_error(actual, expected) < RTOL


@pytest.mark.paddleseg
def test_numerics_match_paddleseg(model, image):
    pytest.importorskip("paddleseg")
    from paddleseg.models import BiSeNetV2

    paddle.seed(1)
    reference = BiSeNetV2(num_classes=19)
    # Non-trivial BN affine parameters and running statistics, and non-zero biases, so a BatchNorm or bias wired to
    # the wrong layer cannot hide behind PaddleSeg's identity initialisation.
    rng = np.random.default_rng(2)
    for key, value in reference.state_dict().items():
        if key.endswith("._mean"):
            value.set_value(rng.normal(0.0, 0.5, value.shape).astype("float32"))
        elif key.endswith("._variance"):
            value.set_value(rng.uniform(0.5, 2.0, value.shape).astype("float32"))
        elif key.endswith("bn.weight") or key.endswith("_batch_norm.weight"):
            value.set_value(rng.uniform(0.5, 1.5, value.shape).astype("float32"))
        elif key.endswith(".bias"):
            value.set_value(rng.normal(0.0, 0.1, value.shape).astype("float32"))
    reference.eval()

    missing, unexpected = model.set_state_dict(reference.state_dict())
    assert missing == [] and unexpected == []

    for x in [image, _randn(ODD_SHAPE, 4)]:
        expected = reference(x)[0].numpy()
        actual = model(x).numpy()
        assert actual.shape == expected.shape
        assert _relative_error(actual, expected) < RTOL
