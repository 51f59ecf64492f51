"""zoo.net.fetch and zoo.store.pins against a real fault-injecting HTTP server on 127.0.0.1.

Every failure test checks that the cache holds nothing new and that the message says what to do next.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest

from tests.http_server import LOGIN_PAGE, FaultServer, http_server  # noqa: F401
from tests.netstub import unknown_host
from zoo import config
from zoo.net import fetch
from zoo.store import cache, pins
from zoo.errors import DownloadError, IntegrityError, OfflineError, ZooError
from zoo.registry.entries import Artifact

DATA = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(2048))  # 64 KiB, deterministic
OTHER = DATA[::-1]
PIN = "m/inference"
NEXT_STEPS = "zoo bundle import"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def art(*urls: str, data: bytes | None = DATA) -> Artifact:
    """An artifact pinned by the registry to ``data`` (unpinned when data is None)."""
    return Artifact("inference", tuple(urls), sha(data) if data else None, len(data) if data else None)


def get(artifact: Artifact, **kwargs) -> fetch.Fetched:
    return fetch.fetch(artifact, pin_id=kwargs.pop("pin_id", PIN), progress=kwargs.pop("progress", False), **kwargs)


def blob_files() -> list[str]:
    folder = cache.blobs_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def assert_nothing_kept() -> None:
    assert blob_files() == []
    assert pins.load_all() == {}


def assert_only_blob(data: bytes) -> None:
    assert blob_files() == [hex_(data)]
    assert cache.blob_path(sha(data)).read_bytes() == data


@pytest.fixture(autouse=True)
def fast_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_TIMEOUT", "0.5")
    monkeypatch.setenv("ZOO_RETRIES", "2")
    monkeypatch.setenv("ZOO_BACKOFF", "0.01")
    monkeypatch.setenv("ZOO_DEADLINE", "10")


# ---- plain downloads, cache hits ------------------------------------------------------------------------------------


def test_download_verifies_and_reuses(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA)
    first = get(art(url))
    assert first == fetch.Fetched(cache.blob_path(sha(DATA)), sha(DATA), len(DATA), url, reused=False)
    assert_only_blob(DATA)
    again = get(art(url))
    assert again.reused and again.path == first.path
    assert len(http_server.requests("/m.tgz")) == 1  # the cache hit touched no network
    assert not get(art(url), force=True).reused
    assert len(http_server.requests("/m.tgz")) == 2
    assert_only_blob(DATA)


def test_redirect_is_followed(http_server: FaultServer) -> None:
    http_server.add("/real.tgz", DATA)
    url = http_server.add("/moved.tgz", redirect="/real.tgz")
    assert get(art(url)).sha256 == sha(DATA)


def test_truncated_blob_in_cache_is_downloaded_again(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA)
    cache.blobs_dir().mkdir(parents=True)
    cache.blob_path(sha(DATA)).write_bytes(DATA[:100])
    assert not get(art(url)).reused
    assert_only_blob(DATA)


# ---- status codes, retries, timeouts --------------------------------------------------------------------------------


def test_404_is_final_for_that_url_and_the_next_url_is_tried(http_server: FaultServer) -> None:
    gone = http_server.add("/gone.tgz", fail=404)
    good = http_server.add("/m.tgz", DATA)
    assert get(art(gone, good)).url == good
    assert [r.status for r in http_server.requests("/gone.tgz")] == [404]  # not retried


def test_404_everywhere_lists_each_url(http_server: FaultServer) -> None:
    a, b = http_server.add("/a", fail=404), http_server.add("/b", fail=403)
    with pytest.raises(DownloadError) as err:
        get(art(a, b))
    message = str(err.value)
    assert f"{a}: HTTP 404" in message and f"{b}: HTTP 403" in message
    assert "check your network" in message and "--mirror" in message and NEXT_STEPS in message
    assert_nothing_kept()


@pytest.fixture
def no_such_host(monkeypatch: pytest.MonkeyPatch) -> str:
    """A host name the resolver does not know, answered at the socket layer (tests never ask the system's DNS)."""
    return unknown_host(monkeypatch)


def test_unknown_host_counts_as_gone(http_server: FaultServer, no_such_host: str) -> None:
    good = http_server.add("/m.tgz", DATA)
    assert get(art("http://no-such-host.invalid/m.tgz", good)).url == good
    with pytest.raises(DownloadError, match="unknown host"):
        get(art("http://no-such-host.invalid/m.tgz", data=OTHER), pin_id="other/inference")


def test_500_then_ok_is_retried(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA, fail=500, times=2)
    assert get(art(url)).sha256 == sha(DATA)
    assert [r.status for r in http_server.requests("/m.tgz")] == [500, 500, 200]
    assert_only_blob(DATA)


def test_500_forever_gives_up_after_retries(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA, fail=503)
    with pytest.raises(DownloadError) as err:
        get(art(url))
    assert "HTTP 503" in str(err.value) and "3 attempts" in str(err.value) and NEXT_STEPS in str(err.value)
    assert len(http_server.requests("/m.tgz")) == 3  # 1 + ZOO_RETRIES
    assert_nothing_kept()


def test_stalled_body_times_out_then_retry_succeeds(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA, stall=5, times=1)
    assert get(art(url, data=None)).sha256 == sha(DATA)
    assert len(http_server.requests("/m.tgz")) == 2  # ZOO_TIMEOUT cut the 5 s stall short, and the retry got it


def test_stalled_body_forever_fails_with_timeout(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA, stall=5)
    with pytest.raises(DownloadError) as err:
        get(art(url, data=None))
    assert "timed out after ZOO_TIMEOUT=0.5s" in str(err.value) and NEXT_STEPS in str(err.value)
    assert_nothing_kept()


def test_total_deadline(http_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_DEADLINE", "0.5")
    url = http_server.add("/m.tgz", DATA, rate=20_000)  # ~3 s, each read well inside ZOO_TIMEOUT
    with pytest.raises(DownloadError, match="ZOO_DEADLINE=0.5s"):
        get(art(url, data=None))
    assert_nothing_kept()


# ---- truncated bodies, resume ---------------------------------------------------------------------------------------


def test_close_before_content_length_is_detected(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA, close_early=True)
    with pytest.raises(DownloadError) as err:
        get(art(url, data=None))
    assert "connection lost after" in str(err.value) and "of 65536 bytes" in str(err.value)
    assert NEXT_STEPS in str(err.value)
    assert len(http_server.requests("/m.tgz")) == 3
    assert_nothing_kept()


def test_failed_resumable_download_keeps_its_partial_for_next_time(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA, close_early=True, range="ignore")
    with pytest.raises(DownloadError, match="bytes received are kept and the next attempt resumes") as err:
        get(art(url))
    assert NEXT_STEPS in str(err.value)
    assert blob_files() == [f".{hex_(DATA)}.partial", f".{hex_(DATA)}.partial.json"]  # no blob, no .incomplete
    http_server.add("/m.tgz", DATA)
    assert get(art(url)).sha256 == sha(DATA)
    last = http_server.requests("/m.tgz")[-1]
    assert (last.range, last.status) == ("bytes=32768-", 206)
    assert_only_blob(DATA)


def test_unsupported_scheme(http_server: FaultServer) -> None:
    with pytest.raises(DownloadError, match="unsupported URL scheme 'ftp'"):
        get(art("ftp://example.org/m.tgz"))
    assert_nothing_kept()


def test_close_early_once_then_retry_succeeds(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA, close_early=True, times=1)
    assert get(art(url, data=None)).sha256 == sha(DATA)
    assert_only_blob(DATA)


def test_reset_mid_stream_resumes_with_only_the_remainder(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA, reset=True, times=1, cut=20_000)
    assert get(art(url)).sha256 == sha(DATA)
    first, second = http_server.requests("/m.tgz")
    assert (first.range, first.status) == (None, 200)
    assert (second.range, second.status) == ("bytes=20000-", 206)
    assert second.if_range and second.if_range.startswith('"')  # the ETag of the first response
    assert_only_blob(DATA)


def test_server_ignoring_range_restarts_cleanly(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA, reset=True, times=1, range="ignore")
    assert get(art(url)).sha256 == sha(DATA)
    assert [(r.range, r.status) for r in http_server.requests("/m.tgz")] == [(None, 200), ("bytes=32768-", 200)]
    assert_only_blob(DATA)


def test_wrong_content_range_start_is_an_error_and_drops_the_partial(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA, reset=True, times=1, range="wrong")
    with pytest.raises(DownloadError) as err:
        get(art(url))
    assert "Content-Range" in str(err.value) and NEXT_STEPS in str(err.value)
    assert_nothing_kept()  # the partial is gone too
    http_server.add("/m.tgz", DATA)
    assert get(art(url)).sha256 == sha(DATA)
    assert http_server.requests("/m.tgz")[-1].range is None  # started from zero


@pytest.mark.parametrize("length", ["chunked", "close"])
def test_no_content_length(http_server: FaultServer, length: str) -> None:
    url = http_server.add("/m.tgz", DATA, length=length)
    assert get(art(url)).sha256 == sha(DATA)
    assert get(art(url, data=None), pin_id="n/inference", force=True).sha256 == sha(DATA)


# ---- wrong content --------------------------------------------------------------------------------------------------


def test_hash_mismatch_keeps_nothing(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", OTHER)
    with pytest.raises(IntegrityError) as err:
        get(art(url))
    message = str(err.value)
    assert sha(DATA) in message and sha(OTHER) in message and url in message and "--mirror" in message
    assert_nothing_kept()


def test_size_mismatch_with_registry(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA + b"extra")
    with pytest.raises(IntegrityError, match="size mismatch"):
        get(Artifact("inference", (url,), None, len(DATA)))
    assert_nothing_kept()


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_page_is_rejected(http_server: FaultServer, content_type: str) -> None:
    url = http_server.add("/m.tgz", LOGIN_PAGE, content_type=content_type)
    with pytest.raises(DownloadError) as err:
        get(art(url, data=None))
    assert "HTML page" in str(err.value) and "login" in str(err.value) and NEXT_STEPS in str(err.value)
    assert_nothing_kept()


def test_html_page_with_registry_hash_says_so(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", html=True)
    with pytest.raises(IntegrityError, match="HTML page"):
        get(art(url))
    assert_nothing_kept()


def test_html_that_matches_the_pinned_hash_is_accepted(http_server: FaultServer) -> None:
    url = http_server.add("/page.html", html=True)
    assert get(art(url, data=LOGIN_PAGE)).sha256 == sha(LOGIN_PAGE)


# ---- pins -----------------------------------------------------------------------------------------------------------


def test_pin_recorded_on_first_download_and_enforced_later(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA)
    get(art(url, data=None))
    entry = pins.get(PIN)
    assert entry is not None and (entry["sha256"], entry["size"], entry["url"]) == (sha(DATA), len(DATA), url)
    assert get(art(url, data=None)).reused  # the pin finds the blob
    http_server.add("/m.tgz", OTHER)  # upstream changed the file
    with pytest.raises(IntegrityError) as err:
        get(art(url, data=None), force=True)
    message = str(err.value)
    assert sha(DATA) in message and sha(OTHER) in message and url in message
    assert f"delete the '{PIN}' entry from {cache.lock_file()}" in message
    assert_only_blob(DATA)
    assert pins.get(PIN) == entry


def test_require_hash_refuses_unpinned_before_any_download(
    http_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.add("/m.tgz", DATA)
    monkeypatch.setenv("ZOO_REQUIRE_HASH", "1")
    with pytest.raises(IntegrityError) as err:
        get(art(url, data=None))
    assert "ZOO_REQUIRE_HASH" in str(err.value) and NEXT_STEPS in str(err.value)
    assert http_server.log == []
    assert_nothing_kept()
    assert get(art(url)).sha256 == sha(DATA)  # a registry hash is enough
    pins.record("p/inference", sha(DATA), len(DATA), url)
    assert get(art(url, data=None), pin_id="p/inference").reused  # and so is a pin


def test_pins_merge_and_conflicts() -> None:
    pins.record(PIN, sha(DATA), len(DATA), "http://a")
    pins.record(PIN, sha(DATA), len(DATA), "http://b")  # same hash again: no-op
    with pytest.raises(IntegrityError, match="delete the"):
        pins.record(PIN, sha(OTHER), len(OTHER), "http://c")
    other = {"o/onnx": {"sha256": sha(OTHER), "size": len(OTHER), "url": "u", "recorded": "t"}}
    with pytest.raises(IntegrityError, match=f"'{PIN}' is pinned to {sha(DATA)}"):
        pins.merge({**other, PIN: {"sha256": sha(OTHER), "size": 1}})
    assert set(pins.load_all()) == {PIN}  # all or nothing
    pins.merge(other)
    assert pins.load_all()["o/onnx"] == other["o/onnx"]
    on_disk = json.loads(cache.lock_file().read_text())  # what was recorded, read back without zoo's reader
    assert set(on_disk) == {PIN, "o/onnx"} and on_disk["o/onnx"] == other["o/onnx"]
    assert (on_disk[PIN]["sha256"], on_disk[PIN]["size"], on_disk[PIN]["url"]) == (sha(DATA), len(DATA), "http://a")
    with pytest.raises(IntegrityError, match="sha256"):
        pins.merge({"x/onnx": {"sha256": "md5:00", "size": 1}})
    assert pins.remove("o/onnx") and not pins.remove("o/onnx")


# ---- offline, local sources, mirrors --------------------------------------------------------------------------------


def test_offline_without_the_blob(http_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    url = http_server.add("/m.tgz", DATA)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setenv("ZOO_MIRROR", http_server.url("/mirror"))
    with pytest.raises(OfflineError) as err:
        get(art(url))
    message = str(err.value)
    assert PIN in message and sha(DATA) in message and url in message
    assert "zoo bundle import FILE" in message and "--mirror DIR" in message and "unset ZOO_OFFLINE" in message
    assert http_server.log == []
    assert_nothing_kept()


def test_offline_with_the_blob_cached(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA)
    get(art(url, data=None))
    result = get(art(url, data=None), offline=True)
    assert result.reused and result.sha256 == sha(DATA)
    assert len(http_server.log) == 1


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_local_file_sources_work_offline(tmp_path: Path, form: str) -> None:
    source = tmp_path / "model files" / "m.tgz"
    source.parent.mkdir()
    source.write_bytes(DATA)
    location = str(source) if form == "path" else source.as_uri()
    result = get(art("http://127.0.0.1:9/unused", location, data=None), offline=True)
    assert (result.url, result.sha256, result.reused) == (location, sha(DATA), False)
    assert_only_blob(DATA)
    assert pins.get(PIN)["sha256"] == sha(DATA)


def test_missing_local_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="no such file"):
        get(art(str(tmp_path / "absent.tgz")))
    assert_nothing_kept()


def _mirror_folder(root: Path, blobs: dict[str, bytes], lock: dict | None = None) -> Path:
    (root / "blobs").mkdir(parents=True)
    for name, data in blobs.items():
        (root / "blobs" / name).write_bytes(data)
    if lock is not None:
        (root / "zoo.lock").write_text(json.dumps(lock))
    return root


def test_mirror_folder_is_tried_first(
    http_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = _mirror_folder(tmp_path / "mirror", {hex_(DATA): DATA})
    url = http_server.add("/m.tgz", DATA)
    monkeypatch.setenv("ZOO_MIRROR", str(mirror))
    result = get(art(url), offline=True)
    assert result.url == str(mirror / "blobs" / hex_(DATA)) and not result.reused
    assert http_server.log == []
    assert_only_blob(DATA)


def test_mirror_folder_lock_pins_an_unpinned_artifact(tmp_path: Path) -> None:
    lock = {PIN: {"sha256": sha(DATA), "size": len(DATA), "url": "x", "recorded": "t"}}
    mirror = _mirror_folder(tmp_path / "mirror", {hex_(DATA): DATA}, lock)
    result = get(art("https://example.invalid/m.tgz", data=None), mirror=mirror.as_uri(), offline=True)
    assert result.sha256 == sha(DATA)
    assert pins.get(PIN)["sha256"] == sha(DATA)  # now pinned locally too


def test_mirror_miss_falls_through_to_the_registry_urls(http_server: FaultServer, tmp_path: Path) -> None:
    mirror = _mirror_folder(tmp_path / "mirror", {}, {})
    url = http_server.add("/m.tgz", DATA)
    assert get(art(url), mirror=str(mirror)).url == url
    assert get(art(url, data=None), pin_id="n/inference", mirror=str(mirror)).url == url  # no lock entry


def test_http_mirror(http_server: FaultServer) -> None:
    http_server.add(f"/mirror/blobs/{hex_(DATA)}", DATA)
    http_server.add("/mirror/zoo.lock", json.dumps({PIN: {"sha256": sha(DATA), "size": len(DATA)}}).encode())
    upstream = http_server.add("/upstream/m.tgz", DATA)
    result = get(art(upstream, data=None), mirror=http_server.url("/mirror/"))
    assert result.url == http_server.url(f"/mirror/blobs/{hex_(DATA)}")
    assert [r.path for r in http_server.log] == ["/mirror/zoo.lock", f"/mirror/blobs/{hex_(DATA)}"]
    assert_only_blob(DATA)


def test_mirror_cannot_substitute_content(http_server: FaultServer) -> None:
    http_server.add(f"/mirror/blobs/{hex_(DATA)}", OTHER)  # a bad mirror
    upstream = http_server.add("/upstream/m.tgz", DATA)
    mirror = http_server.url("/mirror")
    assert get(art(upstream), mirror=mirror).url == upstream  # rejected, then the registry URL
    assert_only_blob(DATA)
    cache.blob_path(sha(DATA)).unlink()
    http_server.add("/upstream/m.tgz", fail=404)
    with pytest.raises(IntegrityError) as err:
        get(art(upstream), mirror=mirror)
    assert "sha256 mismatch" in str(err.value) and "HTTP 404" in str(err.value) and "--mirror" in str(err.value)
    assert blob_files() == []


# ---- concurrency, interruption --------------------------------------------------------------------------------------

CHILD = """
import json, sys
from zoo.net import fetch
from zoo.registry.entries import Artifact
url, digest, size = sys.argv[1], sys.argv[2] or None, int(sys.argv[3]) if sys.argv[3] else None
result = fetch.fetch(Artifact("inference", (url,), digest, size), pin_id="m/inference", progress=False)
print(json.dumps({"path": str(result.path), "reused": result.reused}))
"""


def _child(url: str, data: bytes | None) -> subprocess.Popen:
    args = [url, sha(data) if data else "", str(len(data)) if data else ""]
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ))  # fmt: skip


def _wait_for(predicate, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.02)


def test_two_processes_fetching_at_once(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA, rate=200_000)
    children = [_child(url, None), _child(url, None)]
    outputs = [child.communicate(timeout=30) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    results = [json.loads(out) for out, _ in outputs]
    assert results[0]["path"] == results[1]["path"] == str(cache.blob_path(sha(DATA)))
    assert_only_blob(DATA)
    assert pins.get(PIN)["sha256"] == sha(DATA)


def test_concurrent_fetches_are_correct_without_the_lock(
    http_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch, "_artifact_lock", lambda *a: nullcontext())
    url = http_server.add("/m.tgz", DATA, rate=100_000)  # slow enough that both are downloading at once
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(get(art(url, data=None)))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 2 and all(r.sha256 == sha(DATA) for r in results)
    assert len(http_server.requests("/m.tgz")) == 2  # both really downloaded
    assert_only_blob(DATA)


def _temp_files() -> list[str]:
    return [name for name in blob_files() if name.endswith(".incomplete")]


def test_ctrl_c_leaves_no_temp_file_and_the_next_fetch_resumes(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA, rate=15_000)  # ~4 s: time to interrupt it
    child = _child(url, DATA)
    incomplete = lambda: [n for n in _temp_files() if cache.blobs_dir().joinpath(n).stat().st_size > 0]  # noqa: E731
    _wait_for(lambda: child.poll() is not None or incomplete())
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=10)
    assert child.returncode != 0 and "KeyboardInterrupt" in err
    assert _temp_files() == []
    partial = cache.blobs_dir() / f".{hex_(DATA)}.partial"
    kept = partial.stat().st_size
    assert 0 < kept < len(DATA)
    http_server.add("/m.tgz", DATA)
    assert get(art(url)).sha256 == sha(DATA)
    assert http_server.requests("/m.tgz")[-1].range == f"bytes={kept}-"
    assert_only_blob(DATA)


def test_after_sigkill_stale_files_are_ignored_or_discarded(http_server: FaultServer) -> None:
    url = http_server.add("/m.tgz", DATA, rate=15_000)  # ~4 s: time to interrupt it
    child = _child(url, DATA)
    _wait_for(lambda: child.poll() is not None or _temp_files())
    child.kill()
    child.communicate(timeout=10)
    stale = _temp_files()
    assert len(stale) == 1
    # a stale partial that is not a prefix of the file: resumed, found wrong as a whole, fetched again from zero
    (cache.blobs_dir() / f".{hex_(DATA)}.partial").write_bytes(OTHER[:1000])
    http_server.add("/m.tgz", DATA)
    assert get(art(url)).sha256 == sha(DATA)
    assert [r.range for r in http_server.requests("/m.tgz")[-2:]] == ["bytes=1000-", None]
    assert blob_files() == sorted([hex_(DATA), *stale])  # the dead process's temp file is left for 'zoo cache prune'


# ---- transport: redirects, proxies, TLS ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/m.tgz"])
def test_redirect_away_from_http_is_refused(http_server: FaultServer, target: str) -> None:
    url = http_server.add("/m.tgz", redirect=target)
    with pytest.raises(DownloadError) as err:
        get(art(url))
    assert "HTTP 302" in str(err.value) and f"redirect to {target} refused" in str(err.value)
    assert len(http_server.requests("/m.tgz")) == 1  # final, not retried
    assert_nothing_kept()


def test_proxy_from_the_environment_is_used(http_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    http_server.add("/m.tgz", DATA)
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", http_server.base)  # the test server answers the proxied request itself
    assert get(art("http://zoo-test.invalid/m.tgz")).sha256 == sha(DATA)  # .invalid never resolves
    assert [(r.path, r.status) for r in http_server.requests("/m.tgz")] == [("/m.tgz", 200)]


def test_plain_http_builds_no_tls_context(http_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a TLS context was built for a plain-http download")

    monkeypatch.setattr(ssl, "create_default_context", refuse)
    assert get(art(http_server.add("/m.tgz", DATA))).sha256 == sha(DATA)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)  # fmt: skip
    return cert, key


@pytest.fixture
def https_server(certificate: tuple[Path, Path]) -> Iterator[FaultServer]:
    server = FaultServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.base = server.base.replace("http://", "https://")
    with server:
        yield server


def test_https_with_an_untrusted_certificate_fails_at_once(
    https_server: FaultServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ZOO_BACKOFF", "5")  # a retry would sleep 5 s, and announce it
    url = https_server.add("/m.tgz", DATA)
    with caplog.at_level("WARNING", logger="zoo"), pytest.raises(DownloadError) as err:
        get(art(url))
    assert "TLS certificate not trusted" in str(err.value) and url in str(err.value)
    assert "attempts" not in str(err.value)  # not retried: waiting does not make a certificate trusted
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]
    assert https_server.requests("/m.tgz") == []  # the handshake failed before any request
    assert_nothing_kept()


def test_https_trusts_the_ca_named_by_ssl_cert_file(
    https_server: FaultServer, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    url = https_server.add("/m.tgz", DATA, reset=True, times=1, cut=20_000)  # resume works over TLS too
    assert get(art(url)).sha256 == sha(DATA)
    assert [r.range for r in https_server.requests("/m.tgz")] == [None, "bytes=20000-"]
    assert_only_blob(DATA)


WRITEBACK_CHILD = """
import sys
from zoo.net import fetch, partial
from zoo.registry.entries import Artifact
partial.WRITEBACK = 100_000  # a head start every 100 kB instead of every 8 MiB
artifact = Artifact("inference", (sys.argv[1],), sys.argv[2], int(sys.argv[3]))
print(fetch.fetch(artifact, pin_id="big/inference", progress=False).sha256)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not __import__("shutil").which("strace"),
                    reason="needs Linux and strace to watch the real sync_file_range calls")  # fmt: skip
def test_large_download_starts_writeback_as_it_goes(http_server: FaultServer, tmp_path: Path) -> None:
    """The kernel is really asked to start writing each finished range: strace sees the sync_file_range calls of a
    download in a child process, and the kernel accepts them."""
    import re

    big = DATA * 4  # 256 KiB
    url = http_server.add("/big.tgz", big)
    trace = tmp_path / "strace.txt"
    proc = subprocess.run(["strace", "-f", "-e", "trace=sync_file_range", "-o", str(trace), sys.executable, "-c",
                           WRITEBACK_CHILD, url, sha(big), str(len(big))],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == sha(big), proc.stderr
    calls = [(int(m[1]), int(m[2]), int(m[3])) for m in re.finditer(
        r"sync_file_range\(\d+, (\d+), (\d+), SYNC_FILE_RANGE_WRITE\) = (-?\d+)", trace.read_text())]  # fmt: skip
    assert calls and calls[0][0] == 0, trace.read_text()
    assert all(a + n == b for (a, n, _), (b, _, _) in zip(calls, calls[1:], strict=False))  # contiguous ranges
    assert all(n >= 100_000 for _, n, _ in calls) and calls[-1][0] + calls[-1][1] <= len(big)
    assert all(result == 0 for *_, result in calls)  # the kernel took every request
    assert_only_blob(big)


# ---- progress, configuration ----------------------------------------------------------------------------------------


def test_progress_bar_on_stderr(http_server: FaultServer, capsys: pytest.CaptureFixture[str]) -> None:
    url = http_server.add("/m.tgz", DATA)
    get(art(url), progress=True)
    err = capsys.readouterr().err
    assert PIN in err and "64.0k" in err and "B/s" in err
    get(art(url), force=True, progress=None)  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""


def test_bad_timeout_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_TIMEOUT", "soon")
    with pytest.raises(ZooError, match="ZOO_TIMEOUT must be a number of seconds"):
        config.timeout()
    monkeypatch.setenv("ZOO_RETRIES", "-1")
    with pytest.raises(ZooError, match="ZOO_RETRIES"):
        config.retries()
