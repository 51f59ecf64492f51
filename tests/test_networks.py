"""Contract tests for the five built-in networks, timm-style: one set of checks parametrized over the architectures.

Each network comes from its plugin's builder (``zoo_<arch>.network.build``) and is built once for the session (the
``networks`` fixture caches it), then checked on small inputs for PaddleSeg's state-dict layout, the output
contract in eval and train mode, a few architecture-specific structural facts, the plugin's configuration against
PaddleSeg's release/2.4 config file (tests/reference/<arch>.yml), and — marked ``paddleseg``, with PaddleSeg on the path
(``ZOO_TEST_PADDLESEG_PATH`` in conftest.py; a skip fails the run) — numeric parity of ``zoo export --weights`` with
PaddleSeg's own model built from that config file by PaddleSeg's own Config/SegBuilder.

The export round trip (``paddle.jit.save`` with dynamic N/H/W, run in Paddle Inference, compared with dygraph) is
tested once, in tests/test_export.py::test_export_random_logits_runs_in_paddle_inference.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import json
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

from tests.discovered import BUILTIN_ARCHITECTURES  # noqa: E402 (after the checkout fallback above)

# what discovery loads from zoo itself (a plain checkout has no entry points: the reference files then)
ARCHS = tuple(BUILTIN_ARCHITECTURES) or tuple(sorted(p.name.split(".")[0] for p in REFERENCE_DIR.glob("*.params.tsv")))
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
RESNET_OS8 = ("danet", "deeplabv3", "deeplabv3p")  # ResNet50_vd, output stride 8 (multi-grid: see the YAML)
GAMMA = 0.5  # PaddleSeg zero-initialises DANet's attention gammas, which would make both attention paths no-ops
CONV_STD = {"fcn": 0.03}  # HRNet's default init gives logits near 0; larger random weights blow up its residual sums
RTOL = 1e-5  # PaddleSeg parity, zoo's export in Paddle Inference vs PaddleSeg in dygraph: max |diff| / max |logit|


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


# ---- PaddleSeg's configuration, as data ---------------------------------------------------------------------------
# tests/reference/<arch>.yml is the model section of PaddleSeg's release/2.4 config, copied verbatim. `pretrained`
# names ImageNet/trained weights to download (not the network's shape); `num_classes` is zoo's build argument.
NOT_ARCHITECTURE = ("pretrained", "num_classes")


def _reference_yaml(arch: str) -> dict:
    import yaml

    return yaml.safe_load((REFERENCE_DIR / f"{arch}.yml").read_text())


def _architecture_fields(section: dict) -> dict:
    return {
        key: _architecture_fields(value) if isinstance(value, dict) else value
        for key, value in section.items()
        if key not in NOT_ARCHITECTURE
    }


def _plugin_config(arch: str) -> tuple[dict, dict]:
    module = importlib.import_module(f"zoo_{arch}.network")
    return module.PADDLESEG_CONFIG, module.PADDLESEG_DEFAULTS


def test_every_builtin_architecture_has_its_paddleseg_reference():
    assert set(ARCHS) == set(SIZES) == {p.name.split(".")[0] for p in REFERENCE_DIR.glob("*.params.tsv")}


def test_plugin_config_is_the_paddleseg_release_2_4_config(arch):
    """The configuration each builder uses is, field for field, the model section of PaddleSeg's config file."""
    from urllib.parse import urlparse

    from zoo.registry import entries as registry

    doc, entry = _reference_yaml(arch), registry.get(arch)
    # PaddleSeg publishes trained weights at .../dygraph/cityscapes/<config name>/model.pdparams: the config this file
    # copies and the one the registry entry names are the one its weights were published under
    published = Path(urlparse(entry.artifacts["weights"].urls[0]).path).parent.name
    assert doc["config"] == entry.config == published
    config, defaults = _plugin_config(arch)
    assert config == _architecture_fields(doc["model"])
    # defaults only fill what the config leaves out
    assert not set(defaults) - {"backbone"} & set(config)
    assert not set(defaults.get("backbone", {})) & set(config.get("backbone", {}))


@pytest.mark.paddleseg
def test_plugin_defaults_are_paddleseg_defaults(arch):
    """What a plugin assumes for the fields its config leaves out is PaddleSeg's own default for them."""
    import inspect

    pytest.importorskip("paddleseg")
    from paddleseg.cvlibs import manager
    from paddleseg.models.backbones import hrnet, resnet_vd

    config, defaults = _plugin_config(arch)
    # ResNet50_vd(**args) and HRNet_W18(**kwargs) forward to these classes; their other arguments fix the depth
    backbone_classes = {"ResNet50_vd": resnet_vd.ResNet_vd, "HRNet_W18": hrnet.HRNet}
    owners = [(manager.MODELS[config["type"]], {k: v for k, v in defaults.items() if k != "backbone"})]
    if "backbone" in config:
        owners.append((backbone_classes[config["backbone"]["type"]], defaults.get("backbone", {})))
    for owner, expected in owners:
        parameters = inspect.signature(owner).parameters
        actual = {key: parameters[key].default for key in expected}
        normalise = lambda d: {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}  # noqa: E731
        assert normalise(actual) == normalise(expected), owner.__name__


def _paddleseg_reference(arch: str) -> paddle.nn.Layer:
    """PaddleSeg's own model, built from tests/reference/<arch>.yml by PaddleSeg's Config and SegBuilder."""
    from paddleseg.cvlibs import Config
    from paddleseg.cvlibs.builder import SegBuilder

    model = _reference_yaml(arch)["model"]
    # no downloads: the test sets every weight itself
    opts = [f"model.{key}=None" for key in model if key == "pretrained"]
    opts += [f"model.backbone.{key}=None" for key in model.get("backbone", {}) if key == "pretrained"]
    return SegBuilder(Config(str(REFERENCE_DIR / f"{arch}.yml"), opts=opts)).model


def _paddle_inference(folder: Path, x: np.ndarray) -> np.ndarray:
    """First output of a saved Paddle inference model (CPU, oneDNN off as PIR programs need)."""
    import paddle.inference as pi

    from zoo.store import cache

    config = pi.Config(str(cache.program_file(folder)), str(folder / "model.pdiparams"))
    config.disable_mkldnn()
    config.disable_glog_info()
    predictor = pi.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


PARITY_SHAPES = [(1, 3, 64, 128), (1, 3, 67, 101)]  # a multiple of 32, and odd at every stride (DANet: small HW)


@pytest.mark.slow
@pytest.mark.paddleseg
def test_zoo_export_matches_paddleseg_built_from_its_config(arch, tmp_path):
    """``zoo export ARCH --weights F`` gives the logits of PaddleSeg's model built from the release/2.4 config, for
    the same F: the reference's own state dict, with random BatchNorm statistics, biases (and HRNet weights)."""
    pytest.importorskip("paddleseg")
    from tests.conftest import run_zoo

    paddle.seed(1)
    reference = _paddleseg_reference(arch)
    _randomize(reference, seed=2, conv_std=CONV_STD.get(arch))
    reference.eval()
    weights = tmp_path / "reference.pdparams"
    paddle.save(reference.state_dict(), str(weights))  # the real .pdparams format, written by paddle
    proc = run_zoo("export", arch, "--weights", str(weights), "--output-op", "none", "--json", check=True)
    folder = Path(json.loads(proc.stdout)["path"])
    for i, shape in enumerate(PARITY_SHAPES):
        x = np.random.default_rng(10 + i).standard_normal(shape, dtype=np.float32)
        with paddle.no_grad():
            expected = reference(paddle.to_tensor(x))[0].numpy()
        actual = _paddle_inference(folder, x)
        assert actual.shape == expected.shape == (shape[0], NUM_CLASSES, *shape[2:])
        assert np.abs(expected).max() > 0.1  # logits large enough for the comparison to mean something
        error = _relative_error(actual, expected)
        assert error <= RTOL, f"{arch} at {shape}: max |diff| / max |logit| = {error:.3g}"


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
def test_resnet_backbone_dilations_follow_multi_grid(net, arch):
    # Expected from the release/2.4 YAML, not from the plugin: output stride 8 dilates stage 2 by 2 and stage 3 by 4,
    # and stage 3's blocks multiply that by multi_grid, PaddleSeg's default (1, 1, 1) when the config sets none.
    multi_grid = _reference_yaml(arch)["model"]["backbone"].get("multi_grid", [1, 1, 1])
    backbone = net.backbone
    dilations = [[block.conv1._conv._dilation for block in stage] for stage in backbone.stage_list]
    assert [d[0] for d in dilations] == [[1, 1], [1, 1], [2, 2], [4 * multi_grid[0]] * 2]
    assert dilations[3] == [[4 * m, 4 * m] for m in multi_grid]
    assert dilations[3] == ([[4, 4], [4, 4], [4, 4]] if arch == "danet" else [[4, 4], [8, 8], [16, 16]])
    # os 8: only the first block of stage 1 downsamples, through a 2x2 average pool on its shortcut.
    strides = [block.conv1._conv._stride for stage in backbone.stage_list for block in stage]
    assert sum(s == [2, 2] for s in strides) == 1 and backbone.bb_1_0.conv1._conv._stride == [2, 2]
    assert backbone.bb_1_0.short._avg_pool_first and not backbone.bb_0_0.short._avg_pool_first


@pytest.mark.parametrize("arch", ["fcn"])
def test_hrnet_backbone_concatenates_all_branches_at_stride_4(net):
    with paddle.no_grad():
        features = net.backbone(_randn((1, 3, 64, 128), 0))
    assert features.shape == [1, 18 + 36 + 72 + 144, 16, 32]
