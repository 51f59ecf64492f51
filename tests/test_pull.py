"""zoo pull against the loopback server: first pull, instant re-pull, offline, concurrency, Ctrl-C, ONNX, fallback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_zoo
from tests.http_server import http_server  # noqa: F401
from tests.test_fetch import no_such_host  # noqa: F401  (no system DNS in tests)
from tests.test_archive import FILES, member, model_files, model_tar, snapshot, tar_bytes, use_registry  # noqa: F401
from zoo.store import cache, housekeeping
from zoo.errors import DownloadError, OfflineError, WeightsError


def _temp_files() -> list[Path]:
    """Leftovers a failed or interrupted pull must not leave (a resumable .partial is allowed)."""
    root = cache.root()
    return [p for p in root.rglob("*") if p.name.startswith(".staging-") or p.name.endswith(".incomplete")]


def test_pull_then_path_then_verify(http_server, use_registry) -> None:  # noqa: F811
    url = http_server.add("/tiny.tar", model_tar(top="tiny"))
    use_registry({"tiny": {"inference": url}})

    first = run_zoo("pull", "tiny", "--quiet", check=True)
    last = first.stdout.strip().splitlines()[-1]
    digest = cache.sha256_bytes(model_tar(top="tiny"))
    assert "tiny (paddle)" in last and "from inference" in last and url in last and digest in last
    folder = Path(run_zoo("cache", "path", "tiny", check=True).stdout.strip())
    assert str(folder) in last
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES, cache.MANIFEST])
    ok = run_zoo("cache", "verify", check=True)
    assert ok.stdout.startswith("ok")

    before = len(http_server.log)
    again = run_zoo("pull", "tiny", check=True)
    assert "already cached" in again.stdout and digest in again.stdout
    assert len(http_server.log) == before  # no request at all
    assert run_zoo("cache", "path", "tiny", "--format", "onnx").returncode == 1


def test_offline(http_server, use_registry) -> None:  # noqa: F811
    use_registry({"tiny": {"inference": http_server.add("/tiny.tar", model_tar())},
                  "other": {"inference": http_server.add("/other.tar", model_tar(top="other"))}})  # fmt: skip
    run_zoo("pull", "tiny", "-q", check=True)
    http_server.clear_log()
    before = snapshot()

    cached = run_zoo("pull", "tiny", env={"ZOO_OFFLINE": "1"}, check=True)
    assert "already cached" in cached.stdout
    missing = run_zoo("pull", "other", "--offline")
    assert missing.returncode == 1
    assert "offline" in missing.stderr and "bundle import" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    assert http_server.log == []
    assert snapshot() == before


def test_force_downloads_again(http_server, use_registry) -> None:  # noqa: F811
    from zoo.make.pull import pull

    use_registry({"tiny": {"inference": http_server.add("/tiny.tar", model_tar())}})
    [first] = pull("tiny")
    [again] = pull("tiny", force=True)
    assert not again.reused and again.path == first.path
    assert [r.status for r in http_server.requests("/tiny.tar")] == [200, 200]


def test_concurrent_pulls_share_one_entry(http_server, use_registry) -> None:  # noqa: F811
    body = model_tar(files=model_files(75_000, seed=1))  # 300 kB of params
    use_registry({"tiny": {"inference": http_server.add("/tiny.tar", body, rate=400_000)}})
    procs = [subprocess.Popen([sys.executable, "-m", "zoo", "pull", "tiny", "-q"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(list(cache.models_dir().iterdir())) == 1
    assert len(list(cache.blobs_dir().iterdir())) == 1
    assert len({out.strip().rsplit(" at ", 1)[1] for out, _ in outs}) == 1
    assert _temp_files() == []
    assert housekeeping.verify().ok


def test_ctrl_c_mid_download_then_resume(http_server, use_registry) -> None:  # noqa: F811
    body = model_tar(files=model_files(500_000, seed=2))  # 2 MB of params
    spec = {"urls": [http_server.add("/big.tar", body, rate=200_000)], "sha256": cache.sha256_bytes(body),
            "size": len(body)}  # fmt: skip
    use_registry({"big": {"inference": spec}})
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo", "pull", "big", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background shell may ignore SIGINT
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 100_000 for p in cache.blobs_dir().glob(".*.incomplete")):
        assert time.monotonic() < deadline and proc.poll() is None, "the download never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert _temp_files() == []
    assert cache.get_ref("big") == {} and not list(cache.root().glob("models/*"))
    partial = list(cache.blobs_dir().glob(".*.partial"))
    kept = partial[0].stat().st_size if len(partial) == 1 else 0
    assert 0 < kept < len(body)

    http_server.add("/big.tar", body)  # full speed now
    done = run_zoo("pull", "big", "-q", check=True)
    assert "from inference" in done.stdout
    resumed = http_server.requests("/big.tar")[-1]
    assert resumed.status == 206 and resumed.range == f"bytes={kept}-"
    assert list(cache.blobs_dir().glob(".*")) == []
    assert run_zoo("cache", "verify").returncode == 0


# ---- ONNX -----------------------------------------------------------------------------------------------------------


def onnx_bytes() -> bytes:
    """A tiny valid ONNX model (argmax over channels of a 1x3xHxW input)."""
    from onnx import TensorProto, helper

    node = helper.make_node("ArgMax", ["x"], ["y"], axis=1, keepdims=0)
    graph = helper.make_graph([node], "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 8, 8])])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def test_pull_onnx_file_and_tar(http_server, use_registry) -> None:  # noqa: F811
    from zoo.make.pull import pull

    data = onnx_bytes()
    use_registry({
        "plain": {"onnx": http_server.add("/plain.onnx", data)},
        "packed": {"onnx": http_server.add("/packed.tar", tar_bytes([member("packed/packed.onnx", data)]))},
    })  # fmt: skip
    [plain] = pull("plain", fmt="onnx")
    [packed] = pull("packed", fmt="onnx")
    assert plain.path == packed.path == cache.onnx_model_path("plain") == cache.onnx_model_path("packed")
    assert plain.path.name == "model.onnx" and plain.path.read_bytes() == data
    assert cache.get_ref("plain")["onnx"]["file"] == "model.onnx"
    out = run_zoo("cache", "path", "packed", "--format", "onnx", check=True)
    assert out.stdout.strip() == str(plain.path)
    assert pull("plain", fmt="onnx")[0].reused


def test_pull_all_and_bad_onnx_is_refused(http_server, use_registry) -> None:  # noqa: F811
    from zoo.errors import ConversionError
    from zoo.make.pull import pull

    use_registry({"tiny": {"inference": http_server.add("/tiny.tar", model_tar()),
                           "onnx": http_server.add("/tiny.onnx", b"not a protobuf at all")}})  # fmt: skip
    pull("tiny")
    before = snapshot()
    with pytest.raises(ConversionError):
        pull("tiny", fmt="all")
    assert snapshot() == before
    http_server.add("/tiny.onnx", onnx_bytes())
    results = pull("tiny", fmt="all")
    assert [(r.fmt, r.reused) for r in results] == [("paddle", True), ("onnx", False)]


# ---- which source ---------------------------------------------------------------------------------------------------


def test_server_error_does_not_fall_back(http_server, use_registry, monkeypatch) -> None:  # noqa: F811
    from zoo.make.pull import pull

    monkeypatch.setenv("ZOO_RETRIES", "0")
    use_registry({"tiny": {"inference": http_server.add("/tiny.tar", b"", fail=503),
                           "weights": http_server.add("/w.pdparams", b"w")}})  # fmt: skip
    with pytest.raises(DownloadError, match="503"):
        pull("tiny")
    assert http_server.requests("/w.pdparams") == []
    assert snapshot() == {}


@pytest.mark.parametrize(
    ("faults", "gone"),
    [
        ([{"fail": 404}, {"fail": 410}], True),
        ([{"fail": 404}, "unknown-host"], True),
        ([{"fail": 404}, {"fail": 503}], False),
        ([{"fail": 429}], False),
        ([{"stall": 5}], False),
    ],
)
def test_download_error_says_whether_the_source_is_gone(http_server, monkeypatch, faults, gone,  # noqa: F811
                                                        no_such_host) -> None:  # noqa: F811
    from zoo.net import fetch
    from zoo.registry.entries import Artifact

    monkeypatch.setenv("ZOO_RETRIES", "0")
    monkeypatch.setenv("ZOO_TIMEOUT", "0.5")
    urls = tuple(
        "http://no-such-host.invalid/x.tar" if f == "unknown-host" else http_server.add(f"/g{i}.tar", b"x" * 10, **f)
        for i, f in enumerate(faults)
    )
    with pytest.raises(DownloadError) as info:
        fetch.fetch(Artifact("inference", urls), pin_id="m/inference")
    assert info.value.gone is gone


def test_offline_error_is_not_gone(use_registry) -> None:  # noqa: F811
    from zoo.make.pull import pull

    use_registry({"tiny": {"inference": "http://127.0.0.1:9/tiny.tar", "weights": "http://127.0.0.1:9/w.pdparams"}})
    with pytest.raises(OfflineError):
        pull("tiny", offline=True)


def test_missing_source_says_what_to_do(use_registry) -> None:  # noqa: F811
    from zoo.errors import NotCachedError
    from zoo.make.pull import pull

    use_registry({"tiny": {"inference": "http://127.0.0.1:9/tiny.tar"}})
    with pytest.raises(NotCachedError, match="--from inference"):
        pull("tiny", source="weights")
    with pytest.raises(NotCachedError, match="zoo convert tiny"):
        pull("tiny", fmt="onnx")


def test_gone_inference_falls_back_to_weights(http_server, use_registry, models, tmp_path) -> None:  # noqa: F811
    """404 on the inference archive: the trained weights are fetched and exported; the result says so."""
    from zoo.formats import weights
    from zoo.registry import plugins
    from zoo.make.pull import pull

    net = plugins.load_builder(plugins.get_architecture("unet"))(num_classes=4)
    params = tmp_path / "model.pdparams"
    weights.write_pdparams({k: v.numpy() for k, v in net.state_dict().items()}, params)
    use_registry({"unet-x": {"architecture": "unet", "num_classes": 4,
                             "inference": http_server.url("/gone.tar"),
                             "weights": http_server.add("/unet.pdparams", b"not a pickle")}})  # fmt: skip
    with pytest.raises(WeightsError):
        pull("unet-x")
    assert snapshot() == {}  # the rejected weights are neither kept nor pinned
    http_server.add("/unet.pdparams", params.read_bytes())
    [result] = pull("unet-x")
    assert result.source == "weights" and not result.reused and "gone" in result.note
    assert result.sha256 == cache.sha256_file(params)
    ref = cache.get_ref("unet-x")["paddle"]
    assert ref["source"] == "weights" and ref["url"] == http_server.url("/unet.pdparams")
    assert cache.paddle_model_dir("unet-x") == result.path
    assert [r.status for r in http_server.requests("/gone.tar")] == [404, 404]
    again = pull("unet-x")[0]
    assert again.reused and again.source == "weights"
