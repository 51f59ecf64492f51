"""DANet network: PaddleSeg's state-dict layout, output contract, jit export, and (if installed) numeric parity."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference" / "danet.params.tsv"
INPUT_SHAPE = (1, 3, 64, 96)  # position attention is quadratic in (H/8 * W/8): keep inputs small
GAMMA = 0.5  # PaddleSeg zero-initialises both attention gammas, which would skip the attention paths
RTOL = 1e-5  # max |diff| / max |logit|

try:
    from zoo_danet.network import build
except ImportError:  # running from a plain checkout, before the plugins are installed
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
    from zoo_danet.network import build


def _set_gammas(model, value: float) -> None:
    for name, param in model.named_parameters():
        if name.endswith("gamma"):
            param.set_value(paddle.full([1], value, dtype="float32"))


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


@pytest.fixture(scope="module")
def model():
    paddle.seed(0)
    net = build(num_classes=19)
    _set_gammas(net, GAMMA)
    net.eval()
    return net


@pytest.fixture(scope="module")
def image():
    return paddle.to_tensor(np.random.default_rng(0).standard_normal(INPUT_SHAPE, dtype=np.float32))


def test_state_dict_matches_paddleseg_reference(model):
    with REFERENCE.open(newline="") as f:
        expected = [(row["key"], row["shape"], row["dtype"]) for row in csv.DictReader(f, delimiter="\t")]
    actual = [
        (key, str(list(value.shape)), str(value.dtype).replace("paddle.", ""))
        for key, value in model.state_dict().items()
    ]
    assert [key for key, _, _ in actual] == [key for key, _, _ in expected]
    assert actual == expected


def test_attention_gammas_start_at_zero():
    # Checked on the head alone: building another backbone just for this would double the module's cost.
    from zoo_danet.network import DAHead

    head = DAHead(num_classes=19, in_channels=2048)
    assert head.pam.gamma.numpy().tolist() == [0.0]
    assert head.cam.gamma.numpy().tolist() == [0.0]


def test_eval_returns_main_logits_at_input_size(model, image):
    out = model(image)
    assert isinstance(out, paddle.Tensor)
    assert list(out.shape) == [INPUT_SHAPE[0], 19, *INPUT_SHAPE[2:]]
    assert out.dtype == paddle.float32
    assert np.isfinite(out.numpy()).all()


def test_train_returns_main_and_three_auxiliary_logits(model, image):
    # Training-mode BatchNorm updates its running statistics; put them back for the other tests.
    saved = {key: value.numpy() for key, value in model.state_dict().items()}
    model.train()
    try:
        with paddle.no_grad():
            outs = model(image)
    finally:
        model.eval()
        model.set_state_dict(saved)
    assert len(outs) == 4
    assert all(list(o.shape) == [INPUT_SHAPE[0], 19, *INPUT_SHAPE[2:]] for o in outs)


def test_jit_save_with_dynamic_shape_matches_dygraph(model, tmp_path):
    from paddle.static import InputSpec

    prefix = str(tmp_path / "danet")
    paddle.jit.save(model, prefix, input_spec=[InputSpec([None, 3, None, None], "float32", "x")])
    loaded = paddle.jit.load(prefix)
    loaded.eval()
    # A second N, H, W: the exported program must keep them symbolic.
    for shape in [INPUT_SHAPE, (2, 3, 48, 64)]:
        x = paddle.to_tensor(np.random.default_rng(1).standard_normal(shape, dtype=np.float32))
        expected = model(x).numpy()
        actual = loaded(x)
        actual = (actual[0] if isinstance(actual, (list, tuple)) else actual).numpy()
        assert actual.shape == expected.shape
        assert _relative_error(actual, expected) < RTOL


@pytest.mark.paddleseg
def test_numerics_match_paddleseg(model, image):
    pytest.importorskip("paddleseg")
    from paddleseg.models import DANet
    from paddleseg.models.backbones import ResNet50_vd

    paddle.seed(1)
    reference = DANet(
        num_classes=19,
        backbone=ResNet50_vd(output_stride=8, multi_grid=[1, 2, 4]),
        backbone_indices=[2, 3],
        align_corners=False,
    )
    _set_gammas(reference, GAMMA)
    # Non-trivial running statistics, so a BatchNorm wired to the wrong conv cannot hide behind mean 0 / variance 1.
    rng = np.random.default_rng(2)
    for key, value in reference.state_dict().items():
        if key.endswith("._mean"):
            value.set_value(rng.normal(0.0, 0.1, value.shape).astype("float32"))
        elif key.endswith("._variance"):
            value.set_value(rng.uniform(0.5, 1.5, value.shape).astype("float32"))
    reference.eval()

    missing, unexpected = model.set_state_dict(reference.state_dict())
    assert missing == [] and unexpected == []

    expected = reference(image)[0].numpy()
    actual = model(image).numpy()
    assert actual.shape == expected.shape
    assert _relative_error(actual, expected) < RTOL
