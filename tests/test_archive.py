"""Safe extraction: crafted archives served by the loopback server are refused and leave the cache as it was.

Also holds the small helpers the other cache tests import (registry file, tar builders, cache snapshot).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import random
import struct
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from tests.http_server import http_server  # noqa: F401
from zoo.store import archive, cache
from zoo.errors import ArchiveError



def _varint(n: int) -> bytes:
    out = b""
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def model_files(numel: int = 1000, seed: int = 0) -> dict[str, bytes]:
    """A minimal consistent Paddle model: a PIR model.json declaring one float32 parameter 'w' of ``numel`` values,
    a model.pdiparams holding exactly that tensor record (Paddle's combined format: uint32 0, uint64 0 LoD levels,
    uint32 0, int32 TensorDesc size, TensorDesc {1: FP32 (5), 2: numel}, raw data), and a deploy.yaml."""
    program = {"base_code": {"magic": "pir", "trainable": True, "version": 4}, "program": {"regions": [{
        "#": "region_0", "blocks": [{"#": "block_0", "args": [], "ops": [{
            "#": "p", "A": [0, 1, 1, "w"], "DA": [], "O": {"%": 1, "TT": {
                "#": "0.t_dtensor", "D": [{"#": "0.t_f32"}, [numel], "NCHW", [], 0]}}, "OA": [1, 0, 1], "QA": []}]}]}]}}
    desc = b"\x08\x05\x10" + _varint(numel)
    params = struct.pack("<IQIi", 0, 0, 0, len(desc)) + desc + random.Random(seed).randbytes(4 * numel)
    return {"model.json": json.dumps(program).encode(), "model.pdiparams": params, "deploy.yaml": b"Deploy: {}\n"}


FILES = model_files()


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


def zip_bytes(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    """A zip of (name or ZipInfo, data) entries, deflated."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": wanted, for the crafted ones
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def model_zip(top: str | None = "bisenet", files: dict[str, bytes] | None = None, extra=()) -> bytes:
    """A PaddleSeg-style inference zip (as TIPC's): a top folder entry, the model files, plus ``extra`` entries."""
    prefix = f"{top}/" if top else ""
    entries = [(prefix, b"")] if top else []
    entries += [(prefix + n, d) for n, d in (files or FILES).items()]
    return zip_bytes(entries + list(extra))


def _zip_symlink(name: str, target: bytes) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix: external_attr carries st_mode
    info.external_attr = (0o120777 << 16)  # S_IFLNK
    return info, target


def _patch_central_record(body: bytes, name: str, offset: int, fmt: str, value: int) -> bytes:
    """Overwrite a field of member ``name``'s central-directory record (zipfile writes only honest ones)."""
    out = bytearray(body)
    pos = 0
    while True:
        pos = out.index(b"PK\x01\x02", pos)
        name_len = struct.unpack_from("<H", out, pos + 28)[0]
        if out[pos + 46 : pos + 46 + name_len].decode() == name:
            struct.pack_into(fmt, out, pos + offset, value)
            return bytes(out)
        pos += 4


def _zip_encrypted() -> bytes:
    """A member flagged as encrypted (general-purpose bit 0 at offset 8 of its central record)."""
    return _patch_central_record(model_zip(), "bisenet/model.json", 8, "<H", 0x1)


def _zip_sharing_data() -> bytes:
    """Two central-directory entries pointing at one member's data (the overlapping-zip bomb's trick): the local
    header offset (at 42) of model.pdiparams's record is set to model.json's."""
    body = model_zip()
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        first = zf.getinfo("bisenet/model.json")
    return _patch_central_record(body, "bisenet/model.pdiparams", 42, "<I", first.header_offset)


BOMB_PARAMS = bytes(8 << 20)  # 8 MiB of zeros: packs to ~8 kB, a ratio near 1000


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
    # model.pdiparams against the program's parameter list (issue 12, item 3): at pull time, not at convert time
    "params-zeros": (model_tar(files={**FILES, "model.pdiparams": bytes(len(FILES["model.pdiparams"]))}),
                     "model.pdiparams is not the program's parameters: tensor #1"),
    "params-padded": (model_tar(files={**FILES, "model.pdiparams": FILES["model.pdiparams"] + bytes(100)}),
                      "100 bytes after the program's 1 parameters"),
    "params-other-shape": (model_tar(files={**FILES, "model.pdiparams": model_files(999)["model.pdiparams"]}),
                           r"float32\[999\], the program's parameter 'w' is float32\[1000\]"),
    "params-cut": (model_tar(files={**FILES, "model.pdiparams": FILES["model.pdiparams"][:-1]}), "needs bytes up to"),
    "program-not-paddle": (model_tar(files={**FILES, "model.json": b'{"program": 1}'}), "not a readable Paddle program"),
    # decompression bombs (issue 12, item 3): refused from the headers, by the ratio cap
    "tgz-bomb": (gzip.compress(model_tar(files={**FILES, "model.pdiparams": BOMB_PARAMS})),
                 "member 'bisenet/model.pdiparams' takes the archive to \\d+ unpacked bytes .* decompression bomb"),
    "zip-bomb": (model_zip(files={**FILES, "model.pdiparams": BOMB_PARAMS}),
                 "member 'bisenet/model.pdiparams' takes the archive to \\d+ unpacked bytes .* decompression bomb"),
    # the same member-by-member policy for .tgz and .zip as for .tar
    "tgz-dotdot": (gzip.compress(model_tar(extra=[member("bisenet/../../evil", b"x")])),
                   "member 'bisenet/../../evil' climbs out"),
    "tgz-symlink": (gzip.compress(model_tar(extra=[member("bisenet/model.pdmodel", type=tarfile.SYMTYPE,
                                                          linkname="/etc/passwd")])),
                    "member 'bisenet/model.pdmodel' is a symbolic link"),  # fmt: skip
    "tgz-truncated": (gzip.compress(model_tar())[:-300], "not a readable tar|truncated"),
    "zip-dotdot": (model_zip(extra=[("bisenet/../../evil", b"x")]), "member 'bisenet/../../evil' climbs out"),
    "zip-absolute": (model_zip(extra=[("/tmp/model.json", b"x")]), "member '/tmp/model.json' has an absolute path"),
    "zip-symlink": (model_zip(extra=[_zip_symlink("bisenet/model.pdmodel", b"/etc/passwd")]),
                    "member 'bisenet/model.pdmodel' is a symbolic link"),
    "zip-duplicate": (model_zip(extra=[("bisenet/model.json", b"{}")]), "member 'bisenet/model.json' appears twice"),
    "zip-disallowed": (model_zip(extra=[("bisenet/run.py", b"import os")]), "member 'bisenet/run.py' is not a file"),
    "zip-encrypted": (_zip_encrypted(), "member 'bisenet/model.json' is encrypted"),
    "zip-shared-data": (_zip_sharing_data(), "shares its data with another member"),
    "zip-truncated": (model_zip()[:-200], "not a readable zip archive"),
    "zip-too-many": (model_zip(extra=[(f"bisenet/f{i}", b"") for i in range(archive.MAX_MEMBERS)]), "more than"),
}


@pytest.fixture
def cached_good(http_server, use_registry):  # noqa: F811
    """A cache that already holds model 'good'; model 'bad' is served from /bad.tar."""
    from zoo.make.pull import pull

    use_registry({"good": {"inference": http_server.add("/good.tar", model_tar())},
                  "bad": {"inference": http_server.url("/bad.tar")}})  # fmt: skip
    pull("good")
    return http_server


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_archive_is_refused_and_cache_unchanged(case: str, cached_good, tmp_path: Path) -> None:
    from zoo.make.pull import pull

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
    from zoo.make.pull import pull

    cached_good.add("/bad.tar", CRAFTED["symlink"][0])
    with pytest.raises(ArchiveError):
        pull("bad")
    cached_good.add("/bad.tar", model_tar(top="bad"))
    [result] = pull("bad")
    assert sorted(p.name for p in result.path.iterdir()) == sorted([*FILES, cache.MANIFEST])


def test_byte_limit(cached_good, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.make.pull import pull

    monkeypatch.setenv("ZOO_MAX_UNPACKED", "1000")  # the documented override, scaled down
    cached_good.add("/bad.tar", model_tar())
    before = snapshot()
    with pytest.raises(ArchiveError, match="member 'bisenet/model.pdiparams' takes the archive past 1000 unpacked"):
        pull("bad")
    assert snapshot() == before


# ---- what is accepted -----------------------------------------------------------------------------------------------


def test_pickle_side_file_is_skipped_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tar = tmp_path / "m.tar"
    tar.write_bytes(model_tar(extra=[member("bisenet/model.pdiparams.info", b"\x80\x04cos\nsystem\n.")]))
    with caplog.at_level(logging.INFO, logger="zoo.store.archive"):
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


# ---- real models as .tgz and .zip, end to end -----------------------------------------------------------------------


def _pack(fmt: str, files: dict[str, bytes], top: str | None) -> bytes:
    prefix = f"{top}/" if top else ""
    if fmt == "zip":
        return zip_bytes([(prefix, b"")] * bool(top) + [(prefix + n, d) for n, d in files.items()])
    return gzip.compress(tar_bytes([member(top, type=tarfile.DIRTYPE)] * bool(top)
                                   + [member(prefix + n, d) for n, d in files.items()]))  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "top", "legacy"),
    [
        ("tgz", "bisenet", True),  # like Paddle2ONNX's bisenet.tar.gz / FastDeploy's .tgz: one top folder, .pdmodel
        ("zip", None, False),  # files at the root of the zip, a PIR model.json
    ],
)
def test_real_model_archive_pulls_converts_verifies_and_runs(fmt, top, legacy, models, http_server, tmp_path):  # noqa: F811
    from tests.conftest import run_zoo

    src = models.get("bisenet", legacy=legacy)  # a real BiSeNetV2 export (seeded weights)
    files = {p.name: p.read_bytes() for p in src.iterdir() if p.name != cache.MANIFEST}
    name = f"bisenet-{fmt}"
    url = http_server.add(f"/{name}.{fmt}", _pack(fmt, files, top))
    registry = write_registry(tmp_path / "registry.toml", {name: {"architecture": "bisenet", "inference": url}})
    env = {"ZOO_REGISTRY": str(registry)}

    pulled = run_zoo("pull", name, "--quiet", env=env, check=True)
    assert f"pulled from inference {url}" in pulled.stdout
    folder = Path(run_zoo("cache", "path", name, env=env, check=True).stdout.strip())
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != cache.MANIFEST} == files  # byte for byte

    offline = {**env, "ZOO_OFFLINE": "1"}
    converted = json.loads(run_zoo("convert", name, "--json", env=offline, check=True).stdout)
    assert Path(converted["path"]).is_file()
    verified = run_zoo("verify", name, "--size", "64x128", "--count", "1", "--json", env=offline)
    report = json.loads(verified.stdout)
    assert verified.returncode == 0 and report["passed"] is True, report["summary"]
    assert report["overall"]["agreement"] >= 0.9999
    from zoo.synthetic import write_street_png

    write_street_png(tmp_path / "street.png", 64, 128, seed=1)
    run_zoo("run", name, str(tmp_path / "street.png"), "--out", str(tmp_path / "out"), env=offline, check=True)
    assert (tmp_path / "out" / "street.json").is_file()
    assert run_zoo("cache", "verify", env=offline).returncode == 0
