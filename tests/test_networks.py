"""Contract tests for the five built-in networks, timm-style: one set of checks parametrized over the architectures.

Each network comes from its plugin's builder (``zoo_<arch>.network.build``) and is built once for the session (the
``networks`` fixture caches it), then checked on small inputs for PaddleSeg's state-dict layout, the output
contract in eval and train mode, a few architecture-specific structural facts, and — marked ``paddleseg``, when
PaddleSeg is importable (see ``ZOO_TEST_PADDLESEG_PATH`` in conftest.py) — numeric parity with PaddleSeg's own model.

The export round trip (``paddle.jit.save`` with dynamic N/H/W, run in Paddle Inference, compared with dygraph) is
tested once, in tests/test_export.py::test_export_random_logits_runs_in_paddle_inference.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = ROOT / "tests" / "reference"  # <arch>.params.tsv: PaddleSeg's state-dict keys, shapes and dtypes

try:
    import zoo_bisenet  # noqa: F401  (the plugins are installed with zoo)
except ImportError:  # running from a plain checkout, before the plugins are installed
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

ARCHS = ("bisenet", "danet", "deeplabv3", "deeplabv3p", "fcn")
NUM_CLASSES = 19
# (state-dict entries, values in them) of PaddleSeg's model, so the reference files themselves cannot drift
SIZES = {
    "bisenet": (356, 2_532_215),
    "danet": (315, 47_580_206),
    "deeplabv3": (312, 39_124_851),
    "deeplabv3p": (360, 26_794_243),
    "fcn": (1533, 9_675_595),
}
SHAPES = [
    (1, 3, 64, 128),  # a multiple of 32 (BiSeNetV2's semantic branch and HRNet's last branch have stride 32)
    (2, 3, 67, 101),  # odd at every stride: "same" padding, ceil-mode pooling, BiSeNet's BGA sizes must line up
    (2, 3, 45, 61),  # odd, then even at stride 4: uneven resizing in HRNet's fuse layers
]
TRAIN_OUTPUTS = {"bisenet": 5, "danet": 4}  # main logits, then the auxiliary heads' logits
RESNET_OS8 = ("danet", "deeplabv3", "deeplabv3p")  # ResNet50_vd, output stride 8, multi-grid (1, 2, 4)
GAMMA = 0.5  # PaddleSeg zero-initialises DANet's attention gammas, which would make both attention paths no-ops
CONV_STD = {"fcn": 0.03}  # HRNet's default init gives logits near 0; larger random weights blow up its residual sums
RTOL = 1e-5  # PaddleSeg parity: max |diff| / max |logit| (measured 0.0, bit-exact, for all five)


def _randn(shape: tuple[int, ...], seed: int) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def _randomize(model: paddle.nn.Layer, seed: int, conv_std: float | None = None) -> None:
    """Seeded values far from PaddleSeg's identity initialisation, so a BatchNorm or bias wired to the wrong layer
    cannot hide: every BatchNorm's mean, variance, scale and shift, every bias, DANet's gammas (= GAMMA), and with
    ``conv_std`` every other weight too."""
    rng = np.random.default_rng(seed)
    state = model.state_dict()
    batch_norms = {key.removesuffix("._mean") for key in state if key.endswith("._mean")}
    for key, value in state.items():
        layer = key.rpartition(".")[0]
        if key.endswith("._mean"):
            array = rng.normal(0.0, 0.1, value.shape)
        elif key.endswith("._variance") or (layer in batch_norms and key.endswith(".weight")):
            array = rng.uniform(0.5, 1.5, value.shape)
        elif key.endswith(".bias"):
            array = rng.normal(0.0, 0.1, value.shape)
        elif key.endswith(".gamma"):
            array = np.full(value.shape, GAMMA)
        elif conv_std is not None:
            array = rng.normal(0.0, conv_std, value.shape)
        else:
            continue
        value.set_value(array.astype("float32"))


def _build(arch: str) -> paddle.nn.Layer:
    paddle.seed(0)
    model = importlib.import_module(f"zoo_{arch}.network").build(num_classes=NUM_CLASSES)
    _randomize(model, seed=0, conv_std=CONV_STD.get(arch))
    model.eval()
    return model


@contextlib.contextmanager
def _state_restored(model: paddle.nn.Layer) -> Iterator[paddle.nn.Layer]:
    """Give ``model`` back in eval mode with its weights and BN statistics as they were: the model is shared."""
    saved = {key: value.numpy().copy() for key, value in model.state_dict().items()}
    try:
        yield model
    finally:
        model.eval()
        model.set_state_dict(saved)


@pytest.fixture(scope="module")
def networks() -> Iterator[Callable[[str], paddle.nn.Layer]]:
    """``networks(arch)``: that architecture's network in eval mode, built on first use and kept for the session
    (only this module uses it; module scope frees the ~0.5 GB of weights when it ends). Tests that change it
    restore it (:func:`_state_restored`)."""
    built: dict[str, paddle.nn.Layer] = {}

    def get(arch: str) -> paddle.nn.Layer:
        if arch not in built:
            built[arch] = _build(arch)
        return built[arch]

    yield get
    built.clear()


@pytest.fixture(params=ARCHS)
def arch(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def net(networks, arch: str) -> paddle.nn.Layer:
    return networks(arch)


# ---- every architecture ----------------------------------------------------------------------------------------


def test_state_dict_matches_paddleseg_reference(net, arch):
    with (REFERENCE_DIR / f"{arch}.params.tsv").open(newline="") as f:
        expected = [(row["key"], row["shape"], row["dtype"]) for row in csv.DictReader(f, delimiter="\t")]
    state = net.state_dict()
    actual = [(key, str(list(value.shape)), str(value.dtype).removeprefix("paddle.")) for key, value in state.items()]
    assert [key for key, _, _ in actual] == [key for key, _, _ in expected]  # same keys in the same order
    assert actual == expected  # and the same shapes and dtypes
    assert (len(actual), sum(int(np.prod(value.shape)) for value in state.values())) == SIZES[arch]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_eval_returns_main_logits_at_input_size(net, shape):
    with paddle.no_grad():
        out = net(_randn(shape, 0))
    assert isinstance(out, paddle.Tensor)
    assert list(out.shape) == [shape[0], NUM_CLASSES, *shape[2:]]
    assert out.dtype == paddle.float32
    assert np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("arch", TRAIN_OUTPUTS)
@pytest.mark.filterwarnings("ignore:When training, we now always track global mean and variance")
def test_train_returns_main_and_auxiliary_logits(net, arch):
    shape = SHAPES[0]
    with _state_restored(net):  # a training-mode forward updates the BN running statistics
        net.train()
        with paddle.no_grad():
            outs = net(_randn(shape, 0))
    assert len(outs) == TRAIN_OUTPUTS[arch]
    assert all(list(out.shape) == [shape[0], NUM_CLASSES, *shape[2:]] for out in outs)


def _paddleseg_model(arch: str) -> paddle.nn.Layer:
    """PaddleSeg's own model, configured as zoo's network is (PaddleSeg's Cityscapes configs)."""
    from paddleseg import models
    from paddleseg.models.backbones import HRNet_W18, ResNet50_vd

    if arch == "bisenet":
        return models.BiSeNetV2(num_classes=NUM_CLASSES)
    if arch == "fcn":
        return models.FCN(num_classes=NUM_CLASSES, backbone=HRNet_W18(), backbone_indices=[-1])
    backbone = ResNet50_vd(output_stride=8, multi_grid=[1, 2, 4])
    if arch == "danet":
        return models.DANet(num_classes=NUM_CLASSES, backbone=backbone, backbone_indices=[2, 3], align_corners=False)
    common = {"aspp_ratios": [1, 12, 24, 36], "aspp_out_channels": 256, "align_corners": False}
    if arch == "deeplabv3":
        return models.DeepLabV3(NUM_CLASSES, backbone, backbone_indices=[3], **common)
    return models.DeepLabV3P(NUM_CLASSES, backbone, backbone_indices=[0, 3], **common)


@pytest.mark.paddleseg
def test_numerics_match_paddleseg(net, arch):
    pytest.importorskip("paddleseg")
    paddle.seed(1)
    reference = _paddleseg_model(arch)
    _randomize(reference, seed=2, conv_std=CONV_STD.get(arch))  # other values than the shared model's (seed 0)
    reference.eval()
    with _state_restored(net):
        missing, unexpected = net.set_state_dict(reference.state_dict())
        assert missing == [] and unexpected == []
        for i, shape in enumerate(SHAPES):
            x = _randn(shape, 10 + i)
            with paddle.no_grad():
                expected = reference(x)[0].numpy()
                actual = net(x).numpy()
            assert actual.shape == expected.shape == (shape[0], NUM_CLASSES, *shape[2:])
            assert np.abs(expected).max() > 0.1  # logits large enough for the comparison to mean something
            assert _relative_error(actual, expected) <= RTOL


# ---- architecture-specific -------------------------------------------------------------------------------------


def test_danet_attention_gammas_start_at_zero():
    # Checked on the head alone: the shared network has its gammas set to GAMMA.
    from zoo_danet.network import DAHead

    head = DAHead(num_classes=NUM_CLASSES, in_channels=2048)
    assert head.pam.gamma.numpy().tolist() == [0.0]
    assert head.cam.gamma.numpy().tolist() == [0.0]


def test_danet_shared_network_exercises_both_attention_paths(networks):
    model = networks("danet")
    gammas = {"pam": model.head.pam.gamma, "cam": model.head.cam.gamma}
    assert all(gamma.numpy().tolist() == [GAMMA] for gamma in gammas.values())
    x = _randn(SHAPES[0], 0)
    with paddle.no_grad():
        full = model(x).numpy()
    for name, gamma in gammas.items():
        with _state_restored(model):
            gamma.set_value(paddle.zeros([1], dtype="float32"))
            with paddle.no_grad():
                without = model(x).numpy()
        assert _relative_error(without, full) > 1e-3, f"the {name} branch does not change the logits"


@pytest.mark.parametrize("arch", RESNET_OS8)
def test_resnet_backbone_stage_shapes_output_stride_8(net):
    backbone = net.backbone
    assert backbone.feat_channels == [256, 512, 1024, 2048]
    with paddle.no_grad():
        feats = backbone(_randn((1, 3, 64, 96), 0))
    assert [list(f.shape) for f in feats] == [[1, 256, 16, 24], [1, 512, 8, 12], [1, 1024, 8, 12], [1, 2048, 8, 12]]


@pytest.mark.parametrize("arch", RESNET_OS8)
def test_resnet_backbone_dilations_follow_multi_grid(net):
    backbone = net.backbone
    dilations = [[block.conv1._conv._dilation for block in stage] for stage in backbone.stage_list]
    assert [d[0] for d in dilations] == [[1, 1], [1, 1], [2, 2], [4, 4]]
    assert dilations[3] == [[4, 4], [8, 8], [16, 16]]
    # os 8: only the first block of stage 1 downsamples, through a 2x2 average pool on its shortcut.
    strides = [block.conv1._conv._stride for stage in backbone.stage_list for block in stage]
    assert sum(s == [2, 2] for s in strides) == 1 and backbone.bb_1_0.conv1._conv._stride == [2, 2]
    assert backbone.bb_1_0.short._avg_pool_first and not backbone.bb_0_0.short._avg_pool_first


@pytest.mark.parametrize("arch", ["fcn"])
def test_hrnet_backbone_concatenates_all_branches_at_stride_4(net):
    with paddle.no_grad():
        features = net.backbone(_randn((1, 3, 64, 128), 0))
    assert features.shape == [1, 18 + 36 + 72 + 144, 16, 32]
