"""Long work shows progress on a terminal (stderr, k/N with an ETA, or a spinner saying what it does), and nothing
of it off a terminal; quantize answers an identical rerun from the cache and says so.

Run under a real pseudo-terminal (tests/terminal.py); expectations are what a person would read on it.
"""

from __future__ import annotations

import json
import re

from tests.conftest import run_zoo
from tests.terminal import final_lines, run_on_terminal
from zoo.store import cache

QUANTIZE = ("quantize", "unet-tiny", "--precision", "int8", "--calib-synthetic", "3", "--size", "64x128")


def test_quantize_counts_calibration_images_on_a_terminal_and_reports_memory(models):
    models.install_converted("unet-tiny")
    code, out, screen = run_on_terminal(*QUANTIZE)
    assert code == 0, screen
    # tqdm redraws the bar in place: each count appears, with an ETA field, and the bar is cleared at the end
    counts = [int(k) for k in re.findall(r"calibrating: (\d)/3 images \[\d\d:\d\d<", screen)]
    assert counts[0] == 0 and max(counts) >= 1 and counts == sorted(counts), screen
    lines = [line for line in final_lines(screen) if line.strip()]
    assert lines[0] == "making the onnx-int8 variant of unet-tiny ..."
    peak = re.search(r"peak RSS (\d+)\s+MB", " ".join(lines))  # a line that may have wrapped at a word boundary
    assert peak and 50 < int(peak.group(1)) < 4000, lines
    assert out.strip() == str(cache.variant_path("unet-tiny", "onnx-int8"))
    assert all(len(line) <= 80 for line in lines), lines


def test_no_progress_off_a_terminal_unless_asked(models):
    models.install_converted("unet-tiny")
    proc = run_zoo(*QUANTIZE, check=True)
    assert "calibrating" not in proc.stderr and "\r" not in proc.stderr
    proc = run_zoo(*QUANTIZE, "--force", env={"ZOO_PROGRESS": "1"}, check=True)
    assert re.search(r"calibrating: \d/3 images", proc.stderr), proc.stderr


def test_identical_quantize_is_answered_from_the_cache_unless_forced(models):
    models.install_converted("unet-tiny")
    first = json.loads(run_zoo(*QUANTIZE, "--json", check=True).stdout)
    assert first["cached"] is False
    again = run_zoo(*QUANTIZE, "--json", check=True)
    doc = json.loads(again.stdout)
    assert doc["cached"] is True and doc["key"] == first["key"]
    assert "already in the cache" in again.stderr and "--force" in again.stderr
    assert "making" not in again.stderr
    # another seed is another request; --force makes it again (the same bytes: quantization is deterministic)
    other = json.loads(run_zoo(*QUANTIZE, "--seed", "7", "--json", check=True).stdout)
    assert other["cached"] is False and other["provenance"]["calibration"]["sha256"] != first["provenance"]["calibration"]["sha256"]
    forced = json.loads(run_zoo(*QUANTIZE, "--force", "--json", check=True).stdout)
    assert forced["cached"] is False and forced["provenance"]["sha256"] == first["provenance"]["sha256"]


def test_bad_precision_is_refused_before_anything_is_said_or_converted(models):
    models.install("unet-tiny")  # Paddle model only: a conversion would be needed
    proc = run_zoo("quantize", "unet-tiny", "--precision", "int4")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error: unknown precision 'int4'") and "int8" in lines[0]
    assert "onnx" not in cache.cached_formats("unet-tiny")


def test_quantize_says_it_converts_first(models):
    models.install("unet-tiny")
    proc = run_zoo("quantize", "unet-tiny", "--precision", "fp16", check=True)
    lines = proc.stderr.strip().splitlines()
    assert "unet-tiny: converting it to ONNX" in lines[0]
    assert lines.index("making the onnx-fp16 variant of unet-tiny ...") > 0


def _street_folder(folder, count: int, name: str = "a_rather_long_file_name_for_a_street_scene_number"):
    from zoo.synthetic import write_street_png

    folder.mkdir()
    for i in range(count):
        write_street_png(folder / f"{name}_{i}.png", 64, 128, seed=i)
    return folder


def test_run_over_a_folder_counts_images_with_an_eta_and_fits_80_columns(models, tmp_path):
    models.install_converted("unet-tiny")
    images = _street_folder(tmp_path / "imgs", 4)
    code, out, screen = run_on_terminal("run", "unet-tiny", str(images), "--out", str(tmp_path / "out"))
    assert code == 0, screen
    assert re.search(r"segmenting: [0-4]/4 images \[\d\d:\d\d<", screen), screen
    results = out.strip().splitlines()
    assert len(results) == 4  # one line per image, each within the terminal's 80 columns
    for i, line in enumerate(results):
        assert len(line) <= 80 and re.search(rf"number_{i}\.png: .+ \(\d+ ms\)$", line), line
    # the export has random weights: the run says so, as zoo's own one-line warning
    text = " ".join(line.strip() for line in final_lines(screen))
    assert "zoo: warning: unet-tiny is an untrained export (random weights)" in text, text
    assert all(len(line) <= 80 for line in final_lines(screen))


def test_export_shows_a_spinner_saying_what_it_does(models):
    from tests.models import use_unet_plugin

    code, out, screen = run_on_terminal("export", "unet-tiny", "--weights", "random", env=use_unet_plugin())
    assert code == 0, screen
    assert re.search(r"[|/\\-] exporting unet-tiny: building the network, loading weights \(\d+ s\)", screen), screen
    assert out.startswith("exported unet-tiny")
