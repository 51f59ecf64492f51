"""One artifact model, one door (issue 21 point 1, issue 22 point 11): every command behaves alike on a missing model,
refuses downloads in the same words when offline, and every piece of advice it gives is a command that works.

The models are unet-tiny (the zoo-unet test plugin, seeded random weights) and, for a never-pulled model, the same
network served as an inference archive from a real HTTP server on 127.0.0.1 (tests/test_provision.py's ``served``).
Expected values never come from the code under test: advice is executed and its result checked, the valid precisions
are what the registered backends declare, hashes are taken before the damage.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from tests.conftest import run_zoo
from tests.http_server import http_server  # noqa: F401 - fixture
from tests.test_images import street, write
from tests.test_provision import NAME as SERVED, advice, run_advice, served  # noqa: F401 - fixture
from zoo.store import cache

NAME = "unet-tiny"
SMALL_INT8 = ("--precision", "int8", "--calib-synthetic", "2", "--size", "64x128")  # seconds, not minutes


def _sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_quantize_on_a_never_pulled_model_pulls_converts_and_quantizes(served: Path, http_server):  # noqa: F811
    assert not cache.refs_dir().exists()  # nothing cached: the model has never been pulled
    proc = run_zoo("--registry", str(served), "quantize", SERVED, *SMALL_INT8)
    assert proc.returncode == 0, proc.stderr
    assert "pulling it" in proc.stderr and "converting it to ONNX" in proc.stderr
    assert cache.cached_formats(SERVED) == ["paddle", "onnx", "onnx-int8"]
    # what was pulled is what the server sent; the variant was made from the conversion now cached
    archive = [r for r in http_server.log if r.path == f"/{SERVED}.tar" and r.status == 200]
    assert archive, http_server.log
    ref = cache.get_ref(SERVED)
    fp32, int8 = cache.variant_path(SERVED, "onnx"), cache.variant_path(SERVED, "onnx-int8")
    provenance = cache.read_manifest(int8.parent)["provenance"]
    assert provenance["source_sha256"] == _sha(fp32) and provenance["derived_from"] == ref["paddle"]["key"]
    assert Path(proc.stdout.strip()) == int8


def test_a_corrupt_int8_variant_is_repaired_by_running_its_advice(models, tmp_path: Path):
    models.install_converted(NAME)
    made = run_zoo("quantize", NAME, *SMALL_INT8)
    assert made.returncode == 0, made.stderr
    int8 = cache.variant_path(NAME, "onnx-int8")
    good = _sha(int8)
    fp32_before = _sha(cache.variant_path(NAME, "onnx"))
    image = write(tmp_path / "s.png", street())

    # damage found by `zoo cache verify`: its advice remakes the int8 variant, not the float32 conversion
    _flip_a_byte(int8)
    found = run_zoo("cache", "verify", NAME)
    assert found.returncode == 1 and str(int8.parent) in found.stdout, found.stdout
    commands = advice(found.stderr)
    assert commands, found.stderr
    for command in commands:
        assert run_advice(command, {}).returncode == 0, command
    assert run_zoo("cache", "verify", NAME).returncode == 0
    assert _sha(cache.variant_path(NAME, "onnx-int8")) == good  # the very variant is back, byte for byte
    assert _sha(cache.variant_path(NAME, "onnx")) == fp32_before

    # damage found by `zoo run --precision int8`: same kind of advice, and it works
    _flip_a_byte(cache.variant_path(NAME, "onnx-int8"))
    args = ("run", NAME, str(image), "--out", str(tmp_path / "out"), "--precision", "int8")
    refused = run_zoo(*args)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    for command in advice(refused.stderr):
        assert run_advice(command, {}).returncode == 0, command
    again = run_zoo(*args)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "out" / "s.labels.png").is_file()
    assert _sha(cache.variant_path(NAME, "onnx-int8")) == good


def test_a_missing_int8_variant_advises_a_command_that_makes_it(models, tmp_path: Path):
    models.install_converted(NAME)
    image = write(tmp_path / "s.png", street())
    args = ("run", NAME, str(image), "--out", str(tmp_path / "out"), "--precision", "int8")
    refused = run_zoo(*args)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    commands = advice(refused.stderr)
    assert len(commands) == 1 and " quantize " in commands[0], refused.stderr
    assert run_advice(commands[0], {}).returncode == 0, commands[0]
    assert run_zoo(*args).returncode == 0


def test_re_export_says_what_it_dropped_and_cache_ls_shows_what_remains(models):
    models.install_converted(NAME, seed=7)
    assert run_zoo("quantize", NAME, "--precision", "fp16").returncode == 0
    assert cache.cached_formats(NAME) == ["paddle", "onnx", "onnx-fp16"]

    proc = run_zoo("export", NAME, "--weights", "random", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "dropped" in line]
    assert len(notes) == 1 and "onnx" in notes[0] and "onnx-fp16" in notes[0], proc.stderr
    listing = json.loads(run_zoo("cache", "ls", "--json", check=True).stdout)
    (model,) = [m for m in listing["models"] if m["name"] == NAME]
    assert model["formats"] == ["paddle"]  # what remains, as the note says
    text = run_zoo("cache", "ls", check=True)
    row = next(line for line in text.stdout.splitlines() if line.startswith(NAME))
    assert row.split()[1] == "paddle"
    assert "3 orphan entries" in text.stderr  # the old Paddle model and the two dropped, until "zoo cache prune"

    for command in re.findall(r"'(zoo [^']*)'", notes[0]):  # the note's commands make them again
        assert run_advice(command, {}).returncode == 0, command
    assert cache.cached_formats(NAME) == ["paddle", "onnx", "onnx-fp16"]
    import onnx

    new_paddle = cache.get_ref(NAME)["paddle"]["key"]
    props = {p.key: p.value for p in onnx.load(str(cache.variant_path(NAME, "onnx"))).metadata_props}
    assert props["zoo.paddle_key"] == new_paddle  # remade from the new Paddle model, not the old one


def test_an_impossible_precision_is_refused_up_front_with_the_valid_ones(models, tmp_path: Path):
    import zoo

    declared = {p for b in zoo.list_backends() if b.backend is not None for p in b.backend.precisions}
    image = write(tmp_path / "s.png", street())
    proc = run_zoo("run", NAME, str(image), "--out", str(tmp_path / "out"), "--precision", "int4")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    listed = set(re.search(r"choose one of: (.*)$", proc.stderr.strip()).group(1).split(", "))
    assert listed == declared  # what the registered backends run, nothing else
    assert "zoo quantize" not in proc.stderr  # no advice that would fail
    assert not cache.refs_dir().exists() and not (tmp_path / "out").exists()  # refused before anything happened
    quantize = run_zoo("quantize", NAME, "--precision", "int4")
    assert quantize.returncode == 1 and "int4" in quantize.stderr and "int8" in quantize.stderr
    assert "fp32" not in quantize.stderr  # quantize lists only the variants it makes
    assert not cache.refs_dir().exists()


COMMANDS = {  # every command that needs the model, offline; each must refuse at the one door, in the same words
    "run": lambda image: ("run", SERVED, str(image), "--out", str(image.parent / "out")),
    "run --offline": lambda image: ("run", SERVED, str(image), "--out", str(image.parent / "out"), "--offline"),
    "quantize": lambda image: ("quantize", SERVED, *SMALL_INT8),
    "verify": lambda image: ("verify", SERVED, "--size", "64x128", "--count", "1"),
    "bench": lambda image: ("bench", SERVED, "--backend", "onnx", "--size", "64x128", "--runs", "1", "--warmup", "0"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_offline_is_refused_at_the_one_door(command: str, served: Path, tmp_path: Path):  # noqa: F811
    image = write(tmp_path / "s.png", street())
    env = {"ZOO_REGISTRY": str(served)}
    if command != "run --offline":
        env["ZOO_OFFLINE"] = "1"
    proc = run_zoo(*COMMANDS[command](image), env=env)
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("zoo: error:")]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    flag = "--offline" if command == "run --offline" else "ZOO_OFFLINE=1"
    pull = f"zoo pull {SERVED}" if command == "run --offline" else f"ZOO_OFFLINE=0 zoo pull {SERVED}"
    assert lines[0] == (f"zoo: error: model '{SERVED}' is not in the cache ({cache.root()}) and {flag} forbids "
                        f"downloading it; run '{pull}', then this command again")  # fmt: skip
    assert not cache.refs_dir().exists() or not list(cache.refs_dir().iterdir())  # nothing was half-made
    assert run_advice(advice(proc.stderr)[0], env).returncode == 0  # the advice works ...
    again = run_zoo(*COMMANDS[command](image), env=env)  # ... and then the command does, still offline
    assert again.returncode == 0, again.stderr


def test_zoo_load_refuses_offline_at_the_same_door(served: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    import zoo
    from zoo.errors import NotCachedError

    monkeypatch.setenv("ZOO_REGISTRY", str(served))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(NotCachedError, match=f"ZOO_OFFLINE=1 forbids downloading it; run 'ZOO_OFFLINE=0 zoo pull {SERVED}'"):
        zoo.load(SERVED)
    from zoo.runners import runtime

    with pytest.raises(NotCachedError, match=f"zoo convert {SERVED}"):  # load only opens: it makes nothing
        runtime.load(SERVED)


def test_a_stale_variant_is_refused_with_the_command_that_remakes_it(models):
    models.install_converted(NAME, seed=7)
    assert run_zoo("quantize", NAME, "--precision", "fp16").returncode == 0
    old = {k: v for k, v in cache.get_ref(NAME)["onnx-fp16"].items() if k not in ("derived_from", "updated")}
    assert run_zoo("export", NAME, "--weights", "random", "--seed", "1").returncode == 0
    # a ref written by an older zoo (or by hand) that does not say what the variant derives from: only the file's own
    # metadata tells it was made from the seed-7 network
    cache.set_ref(NAME, "onnx-fp16", old)
    args = ("verify", NAME, "--precision", "fp16", "--size", "32x48", "--count", "1")
    refused = run_zoo(*args)
    assert refused.returncode == 1 and "another Paddle model" in refused.stderr, refused.stderr
    commands = advice(refused.stderr)
    assert commands and commands[-1] == f"zoo verify {NAME}"
    for command in commands[:-1]:
        assert run_advice(command, {}).returncode == 0, command
    import onnx

    props = {p.key: p.value for p in onnx.load(str(cache.variant_path(NAME, "onnx-fp16"))).metadata_props}
    assert props["zoo.paddle_key"] == cache.get_ref(NAME)["paddle"]["key"]  # remade from the network now cached
    assert run_zoo(*args).returncode == 0
