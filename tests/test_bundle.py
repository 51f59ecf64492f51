"""zoo bundle export/import: a round trip to an empty offline cache, tampering refused, bundles as mirrors."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.conftest import run_zoo
from tests.http_server import http_server  # noqa: F401
from tests.test_archive import FILES, model_tar, snapshot, use_registry  # noqa: F401
from tests.test_pull import onnx_bytes
from zoo.make import bundle
from zoo.store import cache, pins
from zoo.errors import ArchiveError, IntegrityError


@pytest.fixture
def exported(http_server, use_registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    """A bundle of 'tiny' (Paddle + ONNX) made in one ZOO_HOME; returns (bundle path, the next, empty ZOO_HOME)."""
    from zoo.make.pull import pull

    use_registry({
        "tiny": {"inference": http_server.add("/tiny.tar", model_tar()),
                 "onnx": http_server.add("/t.onnx", onnx_bytes())},
        "other": {"inference": http_server.add("/other.tar", model_tar(files={**FILES, "deploy.yaml": b"o: 1\n"}))},
    })  # fmt: skip
    pull("tiny", fmt="all")
    out = tmp_path / "out" / "tiny.tar"
    bundle.export_bundle(["tiny"], out)
    fresh = tmp_path / "fresh-home"
    monkeypatch.setenv("ZOO_HOME", str(fresh))
    return out, http_server


def _rewrite(src: Path, dest: Path, changes: dict[str, bytes | None], *, fix_index: bool) -> Path:
    """Copy a bundle, replacing (or with None dropping) members; optionally make bundle.json agree with the change."""
    with tarfile.open(src) as tf:
        files = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
    for name, data in changes.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    if fix_index:
        index = json.loads(files[bundle.INDEX])
        index["files"] = {n: {"sha256": cache.sha256_bytes(d), "size": len(d)} for n, d in files.items()
                          if n != bundle.INDEX}  # fmt: skip
        files[bundle.INDEX] = json.dumps(index).encode()
    with tarfile.open(dest, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return dest


def _members(path: Path) -> list[str]:
    with tarfile.open(path) as tf:
        return tf.getnames()


def test_round_trip_to_an_empty_offline_cache(exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, server = exported
    out = tmp_path / "cli.tar"
    fresh = cache.root().parent
    monkeypatch.setenv("ZOO_HOME", str(first.parent.parent / "zoo-home"))  # back to the source machine
    made = run_zoo("bundle", "export", "tiny", "-o", str(out), check=True)
    assert f"wrote {out}: tiny" in made.stdout
    monkeypatch.setenv("ZOO_HOME", str(fresh))
    names = _members(out)
    assert bundle.INDEX in names and bundle.LOCK in names and "refs/tiny.json" in names
    assert {n.split("/")[0] for n in names} == {"bundle.json", "zoo.lock", "blobs", "models", "onnx", "refs"}
    assert not list(out.parent.glob(".*"))  # no temp file beside the bundle

    imported = run_zoo("bundle", "import", str(out), check=True)
    assert "imported tiny" in imported.stdout
    offline = {"ZOO_OFFLINE": "1"}
    assert run_zoo("cache", "verify", env=offline, check=True).stdout.startswith("ok")
    folder = Path(run_zoo("cache", "path", "tiny", env=offline, check=True).stdout.strip())
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES, cache.MANIFEST])
    onnx = Path(run_zoo("cache", "path", "tiny", "--format", "onnx", env=offline, check=True).stdout.strip())
    assert onnx.read_bytes() == onnx_bytes()
    assert pins.get("tiny/inference")["sha256"] == cache.sha256_bytes(model_tar())
    server.clear_log()
    assert "already cached" in run_zoo("pull", "tiny", "--format", "all", env=offline, check=True).stdout
    assert server.log == []
    # importing the same bundle again changes nothing
    before = snapshot()
    bundle.import_bundle(out)
    assert {k: v for k, v in snapshot().items() if not k.startswith("refs/")} == \
        {k: v for k, v in before.items() if not k.startswith("refs/")}  # fmt: skip


def _blob_member(path: Path) -> str:
    return next(n for n in _members(path) if n.startswith("blobs/"))


@pytest.mark.parametrize("fix_index", [False, True], ids=["index-stale", "index-forged"])
def test_tampered_blob_is_refused(exported, fix_index: bool, tmp_path: Path) -> None:
    from zoo.make.pull import pull

    out, _ = exported
    pull("other")  # the target cache is not empty: it must stay exactly as it is
    before = snapshot()
    bad = _rewrite(out, tmp_path / "bad.tar", {_blob_member(out): model_tar(top="evil")}, fix_index=fix_index)
    result = run_zoo("bundle", "import", str(bad))
    assert result.returncode == 1
    assert "nothing was imported" in result.stderr and "zoo bundle export" in result.stderr
    assert ("does not match bundle.json" if not fix_index else "does not hash to its name") in result.stderr
    assert snapshot() == before
    assert cache.get_ref("tiny") == {}


def test_tampered_model_file_is_refused(exported, tmp_path: Path) -> None:
    """Even with its manifest and the index rewritten to agree, a changed file changes the tree key."""
    out, _ = exported
    params = next(n for n in _members(out) if n.startswith("models/") and n.endswith("model.pdiparams"))
    manifest_name = params.rsplit("/", 1)[0] + "/manifest.json"
    with tarfile.open(out) as tf:
        manifest = json.loads(tf.extractfile(manifest_name).read())
    evil = b"evil weights"
    manifest["files"]["model.pdiparams"] = {"sha256": cache.sha256_bytes(evil), "size": len(evil)}
    bad = _rewrite(out, tmp_path / "bad.tar", {params: evil, manifest_name: json.dumps(manifest).encode()},
                   fix_index=True)  # fmt: skip
    with pytest.raises(ArchiveError, match="does not hash to the folder's name"):
        bundle.import_bundle(bad)
    assert snapshot() == {}


@pytest.mark.parametrize(
    "change, fix_index, message",
    [
        ({"models/evil.sh": b"rm -rf /"}, True, "not a file zoo expects"),
        ({"../escape": b"x"}, True, "climbs out"),
        ({"refs/tiny.json": None}, False, "lists refs/tiny.json but the tar does not hold it"),
        ({"refs/tiny.json": None}, True, "no refs"),
        ({"bundle.json": None}, False, "no bundle.json"),
        ({"zoo.lock": b"{"}, True, "not valid JSON"),
    ],
    ids=["off-allowlist", "dotdot", "ref-unlisted", "no-ref", "no-index", "bad-lock"],
)
def test_malformed_bundle_is_refused(exported, tmp_path: Path, change: dict, fix_index: bool, message: str) -> None:
    out, _ = exported
    bad = _rewrite(out, tmp_path / "bad.tar", change, fix_index=fix_index)
    with pytest.raises((ArchiveError, IntegrityError), match=message):
        bundle.import_bundle(bad)
    assert snapshot() == {}


def test_conflicting_pin_is_refused(exported) -> None:
    out, _ = exported
    pins.record("tiny/inference", cache.sha256_bytes(b"something else"), 14, "http://elsewhere/tiny.tar")
    before = snapshot()
    with pytest.raises(IntegrityError, match="tiny/inference"):
        bundle.import_bundle(out)
    assert snapshot() == before


def test_extracted_bundle_is_a_mirror(exported, tmp_path: Path) -> None:
    out, server = exported
    mirror = tmp_path / "mirror"
    with tarfile.open(out) as tf:
        tf.extractall(mirror, filter="data")
    server.add("/tiny.tar", b"", fail=404)  # the upstream archive is gone
    server.clear_log()
    done = run_zoo("pull", "tiny", "--mirror", str(mirror), "-q", check=True)
    assert "from inference" in done.stdout and str(mirror) in done.stdout
    assert run_zoo("cache", "verify", check=True).stdout.startswith("ok")
    assert server.requests("/tiny.tar") == []


def test_export_needs_cached_models(tmp_path: Path) -> None:
    result = run_zoo("bundle", "export", "nothing", "-o", str(tmp_path / "b.tar"))
    assert result.returncode == 1 and "zoo pull nothing" in result.stderr
    assert not list(tmp_path.glob("*.tar")) and not list(tmp_path.glob(".*"))


# ---- issue 12 item 10: a bundle pins only what it carries -----------------------------------------------------------


def _with_pins(out: Path, dest: Path, extra: dict[str, dict]) -> Path:
    with tarfile.open(out) as tf:
        lock = json.loads(tf.extractfile(bundle.LOCK).read())
    return _rewrite(out, dest, {bundle.LOCK: json.dumps({**lock, **extra}).encode()}, fix_index=True)


def test_bundle_cannot_pin_a_model_it_does_not_carry(exported, tmp_path: Path, use_registry) -> None:  # noqa: F811
    from zoo.make.pull import pull

    out, server = exported
    fake = {"sha256": cache.sha256_bytes(b"evil!"), "size": 5, "url": "x", "recorded": ""}
    bad = _with_pins(out, tmp_path / "bad.tar", {"other/inference": fake})
    result = run_zoo("bundle", "import", str(bad))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "pins 'other/inference', but the bundle carries no model 'other'" in result.stderr
    assert "nothing was imported" in result.stderr
    assert snapshot() == {} and pins.load_all() == {}
    [got] = pull("other")  # later pulls of the other model are unaffected
    assert got.sha256 == cache.sha256_bytes(server.routes["/other.tar"].body)


def test_bundle_pin_must_match_the_blob_it_carries(exported, tmp_path: Path) -> None:
    out, _ = exported
    with tarfile.open(out) as tf:
        lock = json.loads(tf.extractfile(bundle.LOCK).read())
    lock["tiny/inference"]["size"] += 1
    bad = _rewrite(out, tmp_path / "bad.tar", {bundle.LOCK: json.dumps(lock).encode()}, fix_index=True)
    result = run_zoo("bundle", "import", str(bad))
    assert result.returncode == 1 and "pins 'tiny/inference' to" in result.stderr and snapshot() == {}


def test_bundle_pin_without_its_blob_is_not_imported(exported, tmp_path: Path) -> None:
    out, _ = exported
    unbacked = {"sha256": cache.sha256_bytes(b"not here"), "size": 8, "url": "x", "recorded": ""}
    odd = _with_pins(out, tmp_path / "odd.tar", {"tiny/weights": unbacked})
    bundle.import_bundle(odd)
    assert "tiny/weights" not in pins.load_all() and "tiny/inference" in pins.load_all()


def test_a_file_that_is_not_a_tar_is_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_bytes(bytes(range(256)) * 12)
    result = run_zoo("bundle", "import", str(fake))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "not a readable tar archive" in result.stderr and "zoo bundle export" in result.stderr
    assert snapshot() == {}


@pytest.mark.slow
def test_a_real_model_runs_after_import(models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real exported and converted network goes through a bundle to an offline cache and segments the same."""
    from zoo.synthetic import write_street_png

    image = tmp_path / "street.png"
    write_street_png(image, 96, 128, seed=2)
    onnx = models.install_converted("unet-tiny")
    here = run_zoo("run", "unet-tiny", str(image), "--out", str(tmp_path / "here"), check=True)
    assert here.returncode == 0
    out = tmp_path / "unet.tar"
    run_zoo("bundle", "export", "unet-tiny", "-o", str(out), check=True)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "air-gapped"))
    offline = {"ZOO_OFFLINE": "1"}
    run_zoo("bundle", "import", str(out), env=offline, check=True)
    assert cache.onnx_model_path("unet-tiny").read_bytes() == onnx.read_bytes()
    run_zoo("run", "unet-tiny", str(image), "--out", str(tmp_path / "there"), env=offline, check=True)
    labels = sorted(p.name for p in (tmp_path / "here").iterdir())
    assert "street.labels.png" in labels
    for name in labels:
        if name.endswith(".png"):
            assert (tmp_path / "there" / name).read_bytes() == (tmp_path / "here" / name).read_bytes(), name
    assert run_zoo("cache", "verify", env=offline, check=True).stdout.startswith("ok")
