"""DeepLabV3 / DeepLabV3P networks (and their ResNet50_vd backbone): PaddleSeg's state-dict layout, output contract,
jit export with dynamic shapes, and (if the PaddleSeg reference is importable) numeric parity."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = ROOT / "tests" / "reference"
INPUT_SHAPE = (1, 3, 64, 96)
PARITY_SHAPES = [(1, 3, 64, 128), (2, 3, 65, 97)]  # the odd size exercises ceil-mode pooling and uneven resizing
RTOL = 1e-5  # max |diff| / max |logit|
NETWORKS = ["deeplabv3", "deeplabv3p"]

try:
    import zoo_deeplabv3.network  # noqa: F401
except ImportError:  # running from a plain checkout, before the plugins are installed
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]


def _build(name: str):
    if name == "deeplabv3":
        from zoo_deeplabv3.network import build
    else:
        from zoo_deeplabv3p.network import build
    return build(num_classes=19)


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def _random(shape, seed: int):
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


@pytest.fixture(scope="module", params=NETWORKS)
def net(request):
    """(name, model in eval mode); each network is built once for the module."""
    paddle.seed(0)
    model = _build(request.param)
    model.eval()
    return request.param, model


def test_state_dict_matches_paddleseg_reference(net):
    name, model = net
    with (REFERENCE_DIR / f"{name}.params.tsv").open(newline="") as f:
        expected = [(row["key"], row["shape"], row["dtype"]) for row in csv.DictReader(f, delimiter="\t")]
    actual = [
        (key, str(list(value.shape)), str(value.dtype).replace("paddle.", ""))
        for key, value in model.state_dict().items()
    ]
    assert [key for key, _, _ in actual] == [key for key, _, _ in expected]
    assert actual == expected


def test_eval_returns_main_logits_at_input_size(net):
    _, model = net
    with paddle.no_grad():
        out = model(_random(INPUT_SHAPE, 0))
    assert isinstance(out, paddle.Tensor)
    assert list(out.shape) == [INPUT_SHAPE[0], 19, *INPUT_SHAPE[2:]]
    assert out.dtype == paddle.float32
    assert np.isfinite(out.numpy()).all()


def test_backbone_stage_shapes_output_stride_8(net):
    _, model = net
    backbone = model.backbone
    assert backbone.feat_channels == [256, 512, 1024, 2048]
    with paddle.no_grad():
        feats = backbone(_random((1, 3, 64, 96), 0))
    assert [list(f.shape) for f in feats] == [
        [1, 256, 16, 24],
        [1, 512, 8, 12],
        [1, 1024, 8, 12],
        [1, 2048, 8, 12],
    ]


def test_backbone_dilations_follow_multi_grid(net):
    _, model = net
    backbone = model.backbone
    dilations = [[block.conv1._conv._dilation for block in stage] for stage in backbone.stage_list]
    assert [d[0] for d in dilations] == [[1, 1], [1, 1], [2, 2], [4, 4]]
    assert dilations[3] == [[4, 4], [8, 8], [16, 16]]
    # os 8: only the first block of stage 1 downsamples, through a 2x2 average pool on its shortcut.
    strides = [block.conv1._conv._stride for stage in backbone.stage_list for block in stage]
    assert sum(s == [2, 2] for s in strides) == 1 and backbone.bb_1_0.conv1._conv._stride == [2, 2]
    assert backbone.bb_1_0.short._avg_pool_first and not backbone.bb_0_0.short._avg_pool_first


def test_jit_save_with_dynamic_shape_matches_dygraph(net, tmp_path):
    from paddle.static import InputSpec

    name, model = net
    prefix = str(tmp_path / name)
    static = paddle.jit.to_static(
        model, input_spec=[InputSpec([None, 3, None, None], "float32", "x")], full_graph=True
    )
    paddle.jit.save(static, prefix)
    loaded = paddle.jit.load(prefix)
    loaded.eval()
    # A second N, H, W: the exported program must keep them symbolic.
    for shape in [INPUT_SHAPE, (2, 3, 33, 70)]:
        x = _random(shape, 1)
        with paddle.no_grad():
            expected = model(x).numpy()
            actual = loaded(x)
        actual = (actual[0] if isinstance(actual, (list, tuple)) else actual).numpy()
        assert actual.shape == expected.shape
        assert _relative_error(actual, expected) < RTOL


@pytest.mark.paddleseg
def test_numerics_match_paddleseg(net):
    pytest.importorskip("paddleseg")
    from paddleseg.models import DeepLabV3, DeepLabV3P
    from paddleseg.models.backbones import ResNet50_vd

    name, model = net
    paddle.seed(1)
    backbone = ResNet50_vd(output_stride=8, multi_grid=[1, 2, 4])
    common = dict(aspp_ratios=[1, 12, 24, 36], aspp_out_channels=256, align_corners=False)
    if name == "deeplabv3":
        reference = DeepLabV3(19, backbone, backbone_indices=[3], **common)
    else:
        reference = DeepLabV3P(19, backbone, backbone_indices=[0, 3], **common)
    # Non-trivial BatchNorm statistics and affine parameters, so a BatchNorm wired to the wrong conv cannot hide
    # behind the identity initialisation.
    rng = np.random.default_rng(2)
    for key, value in reference.state_dict().items():
        if key.endswith("._mean"):
            value.set_value(rng.normal(0.0, 0.1, value.shape).astype("float32"))
        elif key.endswith("._variance"):
            value.set_value(rng.uniform(0.5, 1.5, value.shape).astype("float32"))
        elif key.endswith("_batch_norm.weight"):
            value.set_value(rng.uniform(0.5, 1.5, value.shape).astype("float32"))
        elif key.endswith("_batch_norm.bias"):
            value.set_value(rng.normal(0.0, 0.1, value.shape).astype("float32"))
    reference.eval()

    missing, unexpected = model.set_state_dict(reference.state_dict())
    assert missing == [] and unexpected == []

    for i, shape in enumerate(PARITY_SHAPES):
        x = _random(shape, 10 + i)
        with paddle.no_grad():
            expected = reference(x)[0].numpy()
            actual = model(x).numpy()
        assert actual.shape == expected.shape == (shape[0], 19, *shape[2:])
        assert _relative_error(actual, expected) < RTOL
