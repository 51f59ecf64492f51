"""At COLUMNS=80, what zoo bench, zoo plugins, zoo verify and zoo run print has no line over 80 characters;
--wide and --json keep everything; a line that had to wrap breaks at a word boundary."""

from __future__ import annotations

import json
import os

from tests.conftest import run_zoo
from tests.test_backends import _fake_backends

NAME = "unet-tiny"
NARROW = {"COLUMNS": "80"}


def _longest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _fits(proc, limit: int = 80) -> None:
    for stream in (proc.stdout, proc.stderr):
        assert _longest(stream) <= limit, "\n".join(line for line in stream.splitlines() if len(line) > limit)


def test_plugins_with_a_long_unavailable_reason_fit_and_wrap_at_words(tmp_path):
    root = _fake_backends(tmp_path / "site", {"needs": "zoo_bb_needs:BACKEND"}, {
        "zoo_bb_needs": "from zoo.registry.spec import Backend\nBACKEND = Backend('needs', 'x', ('onnx',), "
                        "'zoo_bb_needs:open', requires=('no_such_engine_anywhere',), "
                        "install='pip install needs-engine-with-a-rather-long-name[and,some,extras]')\n",
    })  # fmt: skip
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
    wide = run_zoo("plugins", "--wide", env={**env, **NARROW}, check=True)
    assert _longest(wide.stdout) > 80  # the reason really is long
    narrow = run_zoo("plugins", env={**env, **NARROW}, check=True)
    _fits(narrow)
    words = " ".join(narrow.stdout.split())  # wrapped lines read back as the same words
    reason = next(line for line in wide.stdout.splitlines() if line.startswith("needs")).split("UNAVAILABLE", 1)[1]
    assert ("UNAVAILABLE" + " ".join(reason.split())) in words
    assert "--wide or --json" in narrow.stdout or "VERSION" in narrow.stdout.splitlines()[0]
    doc = json.loads(run_zoo("plugins", "--json", env={**env, **NARROW}, check=True).stdout)
    assert any(p["name"] == "needs" and "needs-engine-with-a-rather-long-name" in p["error"] for p in doc)


def test_bench_verify_and_run_fit_80_columns(models, tmp_path):
    from zoo.synthetic import write_street_png

    models.install_converted(NAME)
    run_zoo("quantize", NAME, "--precision", "int8", "--calib-synthetic", "2", "--size", "64x128", check=True)
    bench = run_zoo("bench", NAME, "--backend", "onnx,paddle", "--precision", "fp32,int8", "--size", "64x128",
                    "--runs", "2", "--warmup", "0", env=NARROW, check=True)  # fmt: skip
    _fits(bench)
    assert "--wide or --json shows them" in bench.stdout
    wide = run_zoo("bench", NAME, "--backend", "onnx", "--size", "64x128", "--runs", "1", "--warmup", "0", "--wide",
                   env=NARROW, check=True)  # fmt: skip
    assert "PROVIDERS" in wide.stdout and _longest(wide.stdout) > 80
    verify = run_zoo("verify", NAME, "--precision", "int8", "--size", "64x128", "--count", "2", env=NARROW)
    assert verify.returncode in (0, 1), verify.stderr  # a random net's int8 may or may not pass; the layout is tested
    _fits(verify)
    images = tmp_path / "a folder with a long name for street scenes taken on a rather long drive"
    images.mkdir()
    for i in range(3):
        write_street_png(images / f"street_scene_with_a_long_descriptive_file_name_number_{i}.png", 64, 128, seed=i)
    run = run_zoo("run", NAME, str(images), "--out", str(tmp_path / "out"), env=NARROW, check=True)
    _fits(run)
    assert len(run.stdout.strip().splitlines()) == 3


def test_bench_keeps_finished_rows_and_marks_the_failed_one_with_advice(models):
    models.install_converted(NAME)  # a PIR export: openvino-paddle cannot read it
    proc = run_zoo("bench", NAME, "--backend", "onnx,openvino-paddle", "--size", "64x128", "--runs", "1",
                   "--warmup", "0", env=NARROW)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    rows = {cells[0]: cells for cells in map(str.split, proc.stdout.splitlines()) if cells[1:2] == ["fp32"]}
    assert rows["onnx"][1] == "fp32" and float(rows["onnx"][2]) > 0  # the finished row is printed
    assert rows["openvino-paddle"][2] == "FAILED"
    text = " ".join(proc.stdout.split())
    assert "openvino-paddle/fp32 FAILED:" in text and f"zoo export {NAME} --legacy" in text
    _fits(proc)
    doc = json.loads(run_zoo("bench", NAME, "--backend", "onnx,openvino-paddle", "--size", "64x128", "--runs", "1",
                             "--warmup", "0", "--json").stdout)  # fmt: skip
    assert list(doc["backends"]) == ["onnx/fp32"] and "--legacy" in doc["failed"]["openvino-paddle/fp32"]
