"""zoo.paddle_config: oneDNN settings per program format give the oneDNN-off results, for PIR and legacy programs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zoo import cache, paddle_config
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


class _Recorder:
    """Stands in for paddle.inference.Config: records the calls made on it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name: str):
        return lambda *args: self.calls.append((name, *args))


@pytest.mark.parametrize("program", ["model.json", "model.pdmodel"])
def test_configure_calls(program: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    config = _Recorder()
    info = paddle_config.configure(config, Path(program), threads=None)
    assert ("set_cpu_math_library_num_threads", 3) in config.calls and info["threads"] == 3
    assert ("enable_mkldnn",) in config.calls and ("disable_mkldnn",) not in config.calls
    expected = ["onednn_placement_pass", "transfer_layout_pass"] if program == "model.json" else []
    assert [c[1] for c in config.calls if c[0] == "delete_pass"] == info["deleted_passes"] == expected


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
