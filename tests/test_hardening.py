"""Issue 12's hostile cases, each reproduced with real files, a real loopback server and a real filesystem.

Every case checks what a refusal leaves behind (nothing: no blob, no pin, no staging folder, no partial download)
and that the message is one line ending with a command that helps.
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.http_server import http_server  # noqa: F401
from tests.models import UNET_DIST
from tests.test_archive import use_registry  # noqa: F401
from zoo import cache, pins, weights
from zoo.errors import WeightsError

UNET_ENV = {"PYTHONPATH": str(UNET_DIST)}


def leftovers() -> list[str]:
    """Everything a refused or interrupted operation must not leave in the cache (locks aside)."""
    root = cache.root()
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("locks") or path.is_dir() and path.name in ("blobs", "models", "onnx", "refs"):
            continue
        if rel == "zoo.lock" and not pins.load_all():
            continue
        found.append(rel)
    return found


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


# ---- 1. a pickle that builds an object dtype from attacker bytes ---------------------------------------------------


class _Reduce:
    """Pickles as ``func(*args)`` followed by BUILD ``state``: how a crafted file names allowlisted globals."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _ndarray(dtype, shape=(1,), raw=b"A" * 16, fortran=False) -> _Reduce:
    from numpy._core import multiarray

    return _Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, fortran, raw))


def segfault_pickle() -> bytes:
    """Issue 12 item 1, byte for byte: OrderedDict(_reconstruct(ndarray, (0,), b"b")) whose state is a V16 dtype with
    two object fields and 16 attacker bytes — numpy's own unpickler dereferences 0x4141414141414141."""
    two_pointers = _Reduce(np.dtype, ("V16", False, True), (
        3, "|", None, ("a", "b"), {"a": (np.dtype("O"), 0), "b": (np.dtype("O"), 8)}, 16, 1, 0))  # fmt: skip
    return pickle.dumps({"conv.weight": _Reduce(collections.OrderedDict, (_ndarray(two_pointers),))}, protocol=2)


def _plain_f4_with(state) -> _Reduce:
    return _Reduce(np.dtype, ("f4", False, True), state)


HOSTILE = {
    "issue-recipe": segfault_pickle(),
    "object-dtype": pickle.dumps({"w": _ndarray(np.dtype("O"), (2,))}, protocol=2),
    "fields-via-state": pickle.dumps({"w": _ndarray(_plain_f4_with(
        (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0)), (2,))}, protocol=2),  # fmt: skip
    "subarray-via-state": pickle.dumps({"w": _ndarray(_plain_f4_with(
        (3, "|", (np.dtype("O"), (2,)), None, None, 16, 1, 0)), (1,))}, protocol=2),  # fmt: skip
    "short-data": pickle.dumps({"w": _ndarray(np.dtype("f4"), (1000,), b"\0" * 16)}, protocol=2),
    "negative-shape": pickle.dumps({"w": _ndarray(np.dtype("f4"), (-4,), b"")}, protocol=2),
    "ndarray-call": pickle.dumps({"w": _Reduce(np.ndarray, ((4,), np.dtype("f4")))}, protocol=2),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_crafted_dtype_pickles_are_refused_before_numpy_builds_them(tmp_path: Path, case: str) -> None:
    path = tmp_path / "evil.pdparams"
    path.write_bytes(HOSTILE[case])
    # the old reader crashed the interpreter on "issue-recipe": read in a child, never in the test process
    proc = run_zoo("export", "unet-tiny", "--weights", str(path), env=UNET_ENV)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    line = one_line(proc.stderr)
    assert line.startswith("zoo: error: ") and str(path) in line and "trust" in line
    assert leftovers() == []  # no staging folder, no entry, no ref


def test_plain_arrays_of_every_allowed_dtype_still_load(tmp_path: Path) -> None:
    state = {f"p.{code}": (np.arange(12) % 5).astype(code).reshape(3, 4) for code in sorted(weights.PLAIN_DTYPES)}
    state["big.endian"] = np.arange(6, dtype=">f8").reshape(2, 3)
    state["fortran"] = np.asfortranarray(np.arange(6, dtype="f4").reshape(2, 3))
    state["scalar.shape"] = np.array(3.5, "f4")
    path = tmp_path / "w.pdparams"
    path.write_bytes(pickle.dumps(state, protocol=2))
    loaded = weights.read_pdparams(path)
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape
        assert np.array_equal(loaded[key], value)
        assert loaded[key].flags.writeable


def test_pull_of_a_crafted_weights_url_leaves_nothing(http_server, use_registry) -> None:  # noqa: F811
    use_registry({"unet-x": {"architecture": "unet", "num_classes": 4,
                             "weights": http_server.add("/evil.pdparams", segfault_pickle())}})  # fmt: skip
    proc = run_zoo("pull", "unet-x", "--quiet", env=UNET_ENV)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert "refusing" in one_line(proc.stderr)
    assert leftovers() == []  # no blob, no pin, no models/.staging-*
    again = run_zoo("pull", "unet-x", "--offline", "--quiet", env=UNET_ENV)  # nothing cached to crash on
    assert again.returncode == 1 and "offline mode (--offline)" in one_line(again.stderr)


# ---- 7. export --weights URL keeps nothing it refused ---------------------------------------------------------------


def test_export_weights_url_never_caches_or_pins_refused_content(http_server, models, tmp_path) -> None:  # noqa: F811
    from zoo.export import build_network, export_model

    url = http_server.add("/w.pdparams", HOSTILE["object-dtype"])
    with pytest.raises(WeightsError, match="refusing"):
        export_model("unet-tiny", weights=url)
    assert leftovers() == []  # no blob, no pin for 'unet-tiny/weights@URL'
    net = build_network("unet", 4, None, seed=3)
    good = {k: v.numpy() for k, v in net.state_dict().items()}
    weights.write_pdparams(good, tmp_path / "good.pdparams")
    http_server.add("/w.pdparams", (tmp_path / "good.pdparams").read_bytes())  # the server is fixed
    folder = export_model("unet-tiny", weights=url)
    assert cache.read_manifest(folder)["provenance"]["weights_sha256"] == cache.sha256_file(tmp_path / "good.pdparams")
    assert pins.get(f"unet-tiny/weights@{url}")["sha256"] == cache.sha256_file(tmp_path / "good.pdparams")


# ---- 2. names are checked before any path is built from them -------------------------------------------------------


def test_cache_rm_refuses_names_that_are_paths(models, zoo_home: Path, tmp_path: Path) -> None:
    folder = models.install("unet-tiny")
    victim = zoo_home / "victim.json"
    victim.write_text("{}")
    elsewhere = tmp_path / "elsewhere" / "victim.json"
    elsewhere.parent.mkdir()
    elsewhere.write_text("{}")
    manifest = folder / cache.MANIFEST
    before = manifest.read_bytes()
    for name in ("../../victim", str(elsewhere.with_suffix("")), f"../models/{folder.name}/manifest", "UNET-TINY",
                 "unet-tiny/../unet-tiny"):  # fmt: skip
        proc = run_zoo("cache", "rm", name)
        assert proc.returncode == 1, (name, proc.stdout, proc.stderr)
        assert "is not a model name" in one_line(proc.stderr) and "zoo cache ls" in proc.stderr
        proc = run_zoo("cache", "path", name)
        assert proc.returncode == 1 and "is not a model name" in one_line(proc.stderr)
    assert victim.read_text() == "{}" and elsewhere.read_text() == "{}" and manifest.read_bytes() == before
    assert run_zoo("cache", "rm", "unet-tiny").returncode == 0  # a real name still works
    assert not folder.exists()


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/b", "", ".hidden", "fcn\n"])
def test_every_cache_path_from_a_name_is_checked(name: str) -> None:
    from zoo.errors import InvalidNameError

    for call in (cache.ref_path, cache.get_ref, cache.paddle_model_dir, cache.onnx_model_path, cache.cached_formats,
                 lambda n: cache.set_ref(n, "paddle", {"key": "0" * 64}), cache.drop_ref):  # fmt: skip
        with pytest.raises(InvalidNameError):
            call(name)
    assert not cache.refs_dir().exists() and not cache.locks_dir().exists()
