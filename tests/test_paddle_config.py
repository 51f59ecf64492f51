"""zoo.runners.paddle_config: oneDNN settings per program format give the oneDNN-off results, for PIR and legacy programs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zoo.runners import paddle_config
from zoo.store import cache
from zoo.errors import BackendError

SIZES = [(64, 96), (45, 70)]  # two sizes through one predictor: oneDNN caches primitives per shape


def _config(folder: Path) -> Any:
    from paddle import inference

    return inference.Config(str(cache.program_file(folder)), str(folder / cache.PARAMS_FILE))


def _predictor(folder: Path, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """A predictor set up by configure() (2 threads), and what configure() reported."""
    from paddle import inference

    config = _config(folder)
    info = paddle_config.configure(config, cache.program_file(folder), threads=2, **kwargs)
    paddle_config.disable_glog_info(config)
    return inference.create_predictor(config), info


def _run(predictor, x: np.ndarray) -> np.ndarray:
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def _inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, 3, h, w)).astype(np.float32) for h, w in SIZES]


@pytest.mark.parametrize("legacy", [False, True], ids=["pir", "legacy"])
def test_logits_match_onednn_off(models, legacy: bool) -> None:
    folder = models.get("unet-tiny", output_op="none", legacy=legacy)
    fast, info = _predictor(folder)
    slow, ref_info = _predictor(folder, onednn=False)
    assert info["format"] == ("legacy" if legacy else "pir") and info["mkldnn"] is True and info["threads"] == 2
    assert info["deleted_passes"] == ([] if legacy else list(paddle_config.PIR_DELETED_PASSES))
    assert ref_info["mkldnn"] is False
    for x in _inputs():
        got, want = _run(fast, x), _run(slow, x)
        assert got.shape == want.shape == (1, 4, *x.shape[2:])
        # oneDNN sums in another order: float32 rounding only, 1e-5 of the logits' scale
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))
        np.testing.assert_array_equal(got.argmax(1), want.argmax(1))


def test_argmax_labels_match_onednn_off(models) -> None:
    folder = models.get("unet-tiny")  # PIR, ends in argmax → int32 labels
    fast, _ = _predictor(folder)
    slow, _ = _predictor(folder, onednn=False)
    for x in _inputs():
        got = _run(fast, x)
        assert got.dtype == np.int32 and got.shape == (1, *x.shape[2:])
        np.testing.assert_array_equal(got, _run(slow, x))


def test_plain_onednn_still_fails_on_pir(models) -> None:
    """The Paddle 3.3.1 bug paddle_config works around. If this fails, Paddle fixed it: stop deleting the pass."""
    from paddle import inference

    config = _config(models.get("unet-tiny", output_op="none"))
    config.disable_gpu()
    config.enable_mkldnn()
    paddle_config.disable_glog_info(config)
    predictor = inference.create_predictor(config)
    with pytest.raises(NotImplementedError, match="ConvertPirAttribute2RuntimeAttribute"):
        _run(predictor, _inputs()[0])


@pytest.mark.parametrize("program", ["model.json", "model.pdmodel"])
def test_configure_sets_a_real_config_up(program: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real paddle.inference.Config, read back through its own getters: every core, oneDNN on, no GPU, and a legacy
    program kept off PIR (which the predictor tests above show is what makes its oneDNN attributes load)."""
    from paddle import inference

    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    config = inference.Config()
    config.enable_new_ir(True)  # as a PIR model folder sets it: a legacy program must turn it off
    info = paddle_config.configure(config, Path(program), threads=None)
    assert config.cpu_math_library_num_threads() == 3 == info["threads"]
    assert config.mkldnn_enabled() and not config.use_gpu()
    assert config.new_ir_enabled() is (program == "model.json")
    assert info["format"] == ("pir" if program == "model.json" else "legacy")
    assert bool(info["deleted_passes"]) is (program == "model.json")  # legacy programs keep every pass


def test_unknown_program_format(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="model.json"):
        paddle_config.configure(object(), tmp_path / "model.onnx", threads=1)


def test_disable_glog_info(monkeypatch: pytest.MonkeyPatch) -> None:
    from paddle import inference

    monkeypatch.delenv("GLOG_minloglevel", raising=False)
    config = inference.Config()
    paddle_config.disable_glog_info(config)
    assert config.glog_info_disabled()
    assert os.environ["GLOG_minloglevel"] == "2"


needs_bf16 = pytest.mark.skipif(not paddle_config.cpu_has_bf16(), reason="this CPU has no AVX-512 BF16 / AMX-BF16")


@needs_bf16
def test_bf16_runs_a_pir_program_in_bfloat16(models) -> None:
    """precision="bf16" really computes in bfloat16 (logits move by bf16's rounding, not float32's) and stays close."""
    from zoo.runners.paddle import PaddleRunner

    folder = models.get("unet-tiny", output_op="none")
    fp32 = PaddleRunner(folder, threads=2)
    bf16 = PaddleRunner(folder, threads=2, precision="bf16")
    info = bf16.describe()
    assert info["precision"] == "bf16" and info["options"]["bf16"] == "enable_mkldnn_bfloat16()"
    for x in _inputs():
        got, want = bf16.run(x), fp32.run(x)
        scale = float(np.abs(want).max())
        error = float(np.abs(got - want).max())
        # bfloat16 keeps 8 significant bits: its error is ~1e-3..1e-2 of the scale, float32 reordering's is <1e-5
        assert 1e-4 * scale < error < 0.1 * scale, (error, scale)
        assert (got.argmax(1) == want.argmax(1)).mean() > 0.9


@needs_bf16
def test_bf16_refuses_a_legacy_program_before_running(models) -> None:
    from zoo.runners.paddle import PaddleRunner

    folder = models.get("unet-tiny", legacy=True)
    with pytest.raises(BackendError, match=r"only PIR programs .* --backend openvino --precision bf16"):
        PaddleRunner(folder, threads=2, precision="bf16")


def test_bf16_needs_a_cpu_with_bfloat16(models, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo import util
    from zoo.runners.paddle import PaddleRunner

    monkeypatch.setattr(util, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    with pytest.raises(BackendError, match="no native bfloat16"):
        PaddleRunner(models.get("unet-tiny"), threads=2, precision="bf16")
    with pytest.raises(BackendError, match="not 'int8'"):
        PaddleRunner(models.get("unet-tiny"), threads=2, precision="int8")


@needs_bf16
def test_bf16_still_fails_on_a_legacy_program(models) -> None:
    """Why enable_bf16 refuses legacy programs. If this fails, Paddle fixed it: let legacy programs run bf16."""
    from paddle import inference

    folder = models.get("unet-tiny", legacy=True)
    config = _config(folder)
    paddle_config.configure(config, cache.program_file(folder), threads=2)
    config.enable_mkldnn_bfloat16()
    paddle_config.disable_glog_info(config)
    predictor = inference.create_predictor(config)
    with pytest.raises(Exception, match="does not match the type of data"):
        _run(predictor, _inputs()[0])
