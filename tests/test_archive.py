"""Safe extraction: crafted archives served by the loopback server are refused and leave the cache as it was.

Also holds the small helpers the other cache tests import (registry file, tar builders, cache snapshot).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import tarfile
from pathlib import Path

import pytest

from tests.http_server import http_server  # noqa: F401
from zoo import archive, cache
from zoo.errors import ArchiveError

FILES = {"model.json": b'{"program": 1}', "model.pdiparams": b"\x01\x02" * 2000, "deploy.yaml": b"Deploy: {}\n"}


# ---- helpers shared with test_pull, test_cache_cli and test_bundle --------------------------------------------------


def write_registry(path: Path, models: dict[str, dict[str, str | dict]]) -> Path:
    """A registry file: {name: {kind: url | {"urls": [...], "sha256": ..., "size": ...}}} (architecture fcn unless
    the model's dict has an "architecture" and "num_classes")."""
    lines = ["schema = 1"]
    for name, artifacts in models.items():
        artifacts = dict(artifacts)
        fields = {"architecture": artifacts.pop("architecture", "fcn"), "num_classes": artifacts.pop("num_classes", 19)}
        lines += [f"[models.{name}]"] + [f"{key} = {json.dumps(value)}" for key, value in fields.items()]
        for kind, spec in artifacts.items():
            spec = {"urls": [spec]} if isinstance(spec, str) else spec
            lines.append(f"[models.{name}.{kind}]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in spec.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def use_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """use_registry({name: {kind: url}}) writes a registry file and points ZOO_REGISTRY at it."""

    def use(models: dict[str, dict[str, str | dict]]) -> Path:
        path = write_registry(tmp_path / "registry.toml", models)
        monkeypatch.setenv("ZOO_REGISTRY", str(path))
        return path

    return use


def member(name: str, data: bytes = b"", **attrs) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data) if attrs.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else 0
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def model_tar(top: str | None = "bisenet", files: dict[str, bytes] | None = None, extra=()) -> bytes:
    """A PaddleSeg-style inference tar: top folder, model files, plus ``extra`` members."""
    prefix = f"{top}/" if top else ""
    members = [member(prefix.rstrip("/"), type=tarfile.DIRTYPE)] if top else []
    members += [member(prefix + n, d) for n, d in (files or FILES).items()]
    return tar_bytes(members + list(extra))


def snapshot() -> dict[str, str]:
    """Every file of the cache (lock files aside) with its sha256: 'the cache as it was'. The pins count by content
    (an emptied zoo.lock is no pins, as before)."""
    root = cache.root()
    if not root.is_dir():
        return {}
    found = {
        p.relative_to(root).as_posix(): cache.sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "locks"
    }
    if found.pop("zoo.lock", None) is not None and json.loads(cache.lock_file().read_text()):
        found["zoo.lock"] = json.dumps(json.loads(cache.lock_file().read_text()), sort_keys=True)
    return found


# ---- crafted archives, via zoo pull against the loopback server -----------------------------------------------------


def _truncated_at_member_boundary() -> bytes:
    body = model_tar()
    with tarfile.open(fileobj=io.BytesIO(body)) as tf:
        last = tf.getmembers()[-1]
    end = last.offset_data + (last.size + 511) // 512 * 512
    return body[:end]  # every member whole, the end-of-archive blocks gone


CRAFTED = {
    "dotdot": (model_tar(extra=[member("bisenet/../../evil", b"x")]), "climbs out"),
    "dotdot-top": (tar_bytes([member("../model.json", b"x"), member("../model.pdiparams", b"y")]), "climbs out"),
    "absolute": (model_tar(extra=[member("/tmp/model.json", b"x")]), "absolute path"),
    "symlink": (model_tar(extra=[member("bisenet/model.pdmodel", type=tarfile.SYMTYPE, linkname="/etc/passwd")]),
                "symbolic link"),
    "hardlink": (model_tar(extra=[member("bisenet/model.pdmodel", type=tarfile.LNKTYPE,
                                         linkname="bisenet/model.json")]), "hard link"),  # fmt: skip
    "chardev": (model_tar(extra=[member("bisenet/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)]), "device"),
    "fifo": (model_tar(extra=[member("bisenet/pipe", type=tarfile.FIFOTYPE)]), "FIFO"),
    "too-many": (model_tar(extra=[member(f"bisenet/f{i}", b"") for i in range(archive.MAX_MEMBERS)]),
                 "more than"),
    "truncated-data": (model_tar()[:1024 + 700], "truncated"),
    "truncated-end": (_truncated_at_member_boundary(), "truncated"),
    "truncated-gzip": (gzip.compress(model_tar())[:120], "not a readable tar|truncated"),
    "garbage": (b"this is not a tar file at all\n" * 40, "not a readable tar"),
    "duplicate": (model_tar(extra=[member("bisenet/model.json", b"{}")]), "appears twice"),
    "disallowed-name": (model_tar(extra=[member("bisenet/run.py", b"import os")]), "not a file zoo expects"),
    "nested": (model_tar(extra=[member("bisenet/sub/model.pdmodel", b"x")]), "not a file zoo expects"),
    "no-params": (model_tar(files={"model.json": b"{}", "deploy.yaml": b"a: 1"}), "not a Paddle inference model"),
}


@pytest.fixture
def cached_good(http_server, use_registry):  # noqa: F811
    """A cache that already holds model 'good'; model 'bad' is served from /bad.tar."""
    from zoo.pull import pull

    use_registry({"good": {"inference": http_server.add("/good.tar", model_tar())},
                  "bad": {"inference": http_server.url("/bad.tar")}})  # fmt: skip
    pull("good")
    return http_server


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_archive_is_refused_and_cache_unchanged(case: str, cached_good, tmp_path: Path) -> None:
    from zoo.pull import pull

    body, message = CRAFTED[case]
    cached_good.add("/bad.tar", body)
    before = snapshot()
    with pytest.raises(ArchiveError, match=message) as err:
        pull("bad")
    assert snapshot() == before  # no entry, no staging folder, no blob, no pin of the rejected archive
    assert "pull" in str(err.value) or "bundle" in str(err.value) or "registry" in str(err.value)
    assert not (tmp_path / "evil").exists() and not list(tmp_path.rglob("evil"))
    assert cache.get_ref("bad") == {}


def test_rejected_archive_can_be_fixed_upstream(cached_good) -> None:
    """The rejected download is not pinned, so a corrected archive at the same URL is accepted."""
    from zoo.pull import pull

    cached_good.add("/bad.tar", CRAFTED["symlink"][0])
    with pytest.raises(ArchiveError):
        pull("bad")
    cached_good.add("/bad.tar", model_tar(top="bad"))
    [result] = pull("bad")
    assert sorted(p.name for p in result.path.iterdir()) == sorted([*FILES, cache.MANIFEST])


def test_byte_limit(cached_good, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.pull import pull

    monkeypatch.setattr(archive, "MAX_BYTES", 1000)
    cached_good.add("/bad.tar", model_tar())
    before = snapshot()
    with pytest.raises(ArchiveError, match="more than 1000 bytes"):
        pull("bad")
    assert snapshot() == before


# ---- what is accepted -----------------------------------------------------------------------------------------------


def test_pickle_side_file_is_skipped_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tar = tmp_path / "m.tar"
    tar.write_bytes(model_tar(extra=[member("bisenet/model.pdiparams.info", b"\x80\x04cos\nsystem\n.")]))
    with caplog.at_level(logging.INFO, logger="zoo.archive"):
        folder = archive.extract_paddle_model(tar, {"source": "test"})
    assert not (folder / "model.pdiparams.info").exists()
    assert set(cache.read_manifest(folder)["files"]) == set(FILES)
    assert "model.pdiparams.info" in caplog.text


@pytest.mark.parametrize("top", [None, "bisenet", "./bisenet"])
def test_top_folder_is_flattened(tmp_path: Path, top: str | None) -> None:
    tar = tmp_path / "m.tar"
    tar.write_bytes(model_tar(top=top))
    folder = archive.extract_paddle_model(tar, {})
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES, cache.MANIFEST])
    assert cache.check_tree(folder) == []
    assert folder.name == cache.tree_key(cache.file_records(folder))


def test_gzip_and_same_content_same_entry(tmp_path: Path) -> None:
    plain, packed = tmp_path / "a.tar", tmp_path / "b.tar.gz"
    plain.write_bytes(model_tar(top="a"))
    packed.write_bytes(gzip.compress(model_tar(top="b")))
    assert archive.extract_paddle_model(plain, {}) == archive.extract_paddle_model(packed, {})
    assert len(list(cache.models_dir().iterdir())) == 1  # content-addressed, no staging folder left


def test_damaged_entry_is_replaced_on_commit(tmp_path: Path) -> None:
    tar = tmp_path / "m.tar"
    tar.write_bytes(model_tar())
    folder = archive.extract_paddle_model(tar, {})
    (folder / "model.pdiparams").write_bytes(b"rot")
    assert archive.extract_paddle_model(tar, {}) == folder
    assert cache.check_tree(folder) == []


def test_extract_checks_before_writing(tmp_path: Path) -> None:
    """A bad member at the end stops extraction before the good members before it are written."""
    tar, dest = tmp_path / "m.tar", tmp_path / "dest"
    dest.mkdir()
    tar.write_bytes(model_tar(extra=[member("bisenet/zzz", b"x")]))
    with pytest.raises(ArchiveError, match="zzz"):
        archive.extract(tar, dest, allow=archive.is_paddle_file, flatten=True)
    assert list(dest.iterdir()) == []
