"""zoo cache ls|path|verify|rm|prune on a cache filled by real pulls from the loopback server."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import run_zoo
from tests.http_server import http_server  # noqa: F401
from tests.test_archive import FILES, model_tar, snapshot, use_registry  # noqa: F401
from zoo.store import archive, cache, housekeeping


@pytest.fixture
def two_models(http_server, use_registry):  # noqa: F811
    """Models 'tiny' and 'other' pulled into the cache (different content)."""
    from zoo.make.pull import pull

    use_registry({"tiny": {"inference": http_server.add("/tiny.tar", model_tar())},
                  "other": {"inference": http_server.add("/other.tar", model_tar(
                      files={**FILES, "deploy.yaml": b"Deploy: {other: 1}\n"}))}})  # fmt: skip
    pull("tiny")
    pull("other")
    return http_server


def _age(path: Path, seconds: float = 3600) -> None:
    """Make a file or folder look left behind by a process that died an hour ago."""
    old = time.time() - seconds
    for p in [path, *(path.rglob("*") if path.is_dir() else [])]:
        os.utime(p, (old, old))


def test_verify_names_a_file_corrupted_later(two_models) -> None:
    assert run_zoo("cache", "verify", check=True).stdout.startswith("ok")
    params = cache.paddle_model_dir("tiny") / "model.pdiparams"
    params.write_bytes(bytes([params.read_bytes()[0] ^ 0xFF]) + params.read_bytes()[1:])  # same size: only a re-hash sees it

    bad = run_zoo("cache", "verify")
    assert bad.returncode == 1
    assert f"corrupt: {params}" in bad.stdout
    assert bad.stderr.startswith("zoo: error:") and "zoo pull tiny --force" in bad.stderr
    assert run_zoo("cache", "verify", "other").returncode == 0
    assert run_zoo("cache", "verify", "tiny").returncode == 1

    run_zoo("pull", "tiny", "--force", "-q", check=True)  # repairs the entry in place
    assert run_zoo("cache", "verify", check=True).stdout.startswith("ok")


def test_verify_reports_missing_stray_and_bad_blob(two_models) -> None:
    folder = cache.paddle_model_dir("other")
    (folder / "deploy.yaml").unlink()
    (folder / "notes.txt").write_text("hello")
    blob = cache.blob_path(cache.get_ref("tiny")["paddle"]["sha256"])
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    (cache.blobs_dir() / ".0123.incomplete").write_bytes(b"left by a killed pull")  # temp files are not problems

    report = housekeeping.verify()
    found = {(p.kind, p.path) for p in report.problems}
    assert found == {("missing", folder / "deploy.yaml"), ("stray", folder / "notes.txt"), ("corrupt", blob)}
    out = run_zoo("cache", "verify")
    assert out.returncode == 1 and str(blob) in out.stdout and "notes.txt" in out.stdout


def test_prune_removes_stale_temp_files_and_orphans(two_models, tmp_path: Path) -> None:
    stale_stage = cache.models_dir() / ".staging-abc123"
    stale_stage.mkdir()
    (stale_stage / "model.pdiparams").write_bytes(b"half")
    stale_incomplete = cache.blobs_dir() / ".deadbeef.1234.incomplete"
    stale_incomplete.write_bytes(b"partial")
    stale_ref = cache.refs_dir() / ".tiny.json.x1.incomplete"
    stale_ref.write_text("{")
    fresh = cache.blobs_dir() / ".cafe.5678.incomplete"  # a download running right now
    fresh.write_bytes(b"growing")
    tar = tmp_path / "orphan.tar"
    tar.write_bytes(model_tar(files={**FILES, "deploy.yaml": b"orphan: 1\n"}))
    orphan = archive.extract_paddle_model(tar, {"source": "test"})  # no ref points at it
    unreferenced = cache.blob_path(cache.sha256_bytes(b"nobody"))
    unreferenced.write_bytes(b"nobody")
    stale = [stale_stage, stale_incomplete, stale_ref, orphan, unreferenced]
    for path in stale:
        _age(path)

    before = snapshot()
    dry = run_zoo("cache", "prune", "--dry-run", check=True)
    assert all(f"would remove {p}" in dry.stdout for p in stale)
    assert str(fresh) not in dry.stdout
    assert snapshot() == before and stale_stage.is_dir()

    done = run_zoo("cache", "prune", check=True)
    assert all(f"removed {p}" in done.stdout for p in stale)
    assert not any(p.exists() for p in stale)
    assert fresh.exists()  # too young to be someone else's leftover
    assert not list(cache.models_dir().glob(".staging-*"))
    assert run_zoo("cache", "verify", check=True).stdout.startswith("ok")
    assert run_zoo("cache", "path", "tiny").returncode == 0
    again = run_zoo("cache", "prune", check=True)
    assert "removed 0 item(s)" in again.stdout


def test_rm(two_models) -> None:
    tiny_dir = cache.paddle_model_dir("tiny")
    tiny_blob = cache.blob_path(cache.get_ref("tiny")["paddle"]["sha256"])
    out = run_zoo("cache", "rm", "tiny", check=True)
    assert "removed tiny" in out.stdout
    assert not tiny_dir.exists() and not tiny_blob.exists() and cache.get_ref("tiny") == {}
    missing = run_zoo("cache", "path", "tiny")
    assert missing.returncode == 1 and "zoo pull tiny" in missing.stderr
    assert run_zoo("cache", "verify", check=True).stdout.startswith("ok")
    assert run_zoo("cache", "path", "other").returncode == 0
    again = run_zoo("cache", "rm", "tiny")
    assert again.returncode == 1 and "zoo cache ls" in again.stderr


def test_rm_keeps_an_entry_another_name_uses(two_models, use_registry) -> None:  # noqa: F811
    key = cache.get_ref("tiny")["paddle"]["key"]
    cache.set_ref("alias", "paddle", {"key": key, "source": "inference"})
    housekeeping.remove("tiny")
    assert cache.paddle_model_dir("alias").name == key


def test_ls(two_models) -> None:
    data = json.loads(run_zoo("cache", "ls", "--json", check=True).stdout)
    models = {m["name"]: m for m in data["models"]}
    assert set(models) == {"tiny", "other"}
    assert models["tiny"]["formats"] == ["paddle"] and models["tiny"]["source"] == "inference"
    assert models["tiny"]["sha256"] == cache.sha256_bytes(model_tar())
    assert models["tiny"]["size"] > 0 and models["tiny"]["updated"]
    assert len(data["entries"]) == 2 and len(data["blobs"]) == 2 and all(b["names"] for b in data["blobs"])
    text = run_zoo("cache", "ls", check=True)
    assert text.stdout.splitlines()[0].split() == ["NAME", "FORMATS", "SOURCE", "SIZE", "UPDATED"]
    assert "2 models" in text.stderr


def test_verify_advice_for_each_damage_is_a_command_that_fixes_it(two_models) -> None:
    """Issue 12 item 8: every advice string is run, and the cache is whole afterwards."""
    import re
    import shlex
    import subprocess

    tiny = cache.paddle_model_dir("tiny")
    params = tiny / "model.pdiparams"
    data = params.read_bytes()
    params.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])  # flip a byte (FILES' params start with 0)
    orphan = cache.paddle_model_dir("other")
    cache.drop_ref("other")  # its entry is now used by no model
    (orphan / "deploy.yaml").write_text("changed")
    bad = run_zoo("cache", "verify")
    assert bad.returncode == 1
    advice = re.findall(r"run '([^']+)'", bad.stderr)
    assert sorted(advice) == sorted(["zoo pull tiny --force", f"rm -r {orphan}"]), bad.stderr
    for command in advice:
        argv = shlex.split(command)
        if argv[0] == "zoo":
            run_zoo(*argv[1:], check=True)
        else:
            subprocess.run(argv, check=True)
    assert run_zoo("cache", "verify", check=True).stdout.startswith("ok")
