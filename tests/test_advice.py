"""The first hour's friction: help and options that work as people type them, warnings and errors as one line
that names the cause and the next step, sizes written HxW, the demo honouring ZOO_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import run_zoo

NAME = "unet-tiny"
REPO = Path(__file__).resolve().parents[1]


def test_dash_h_completion_and_help_without_python_types():
    short = run_zoo("-h", check=True).stdout
    assert short == run_zoo("--help", check=True).stdout and "--install-completion" in short
    assert "-h, --help" in short
    completion = run_zoo("--show-completion", env={"SHELL": "/bin/bash"}, check=True).stdout
    assert "_ZOO_COMPLETE=complete_bash" in completion  # a bash completion script for `zoo`
    # what that script asks zoo when <TAB> is pressed after `zoo ver`
    asked = run_zoo(env={"_ZOO_COMPLETE": "complete_bash", "COMP_WORDS": "zoo ver", "COMP_CWORD": "1"}, check=True)
    assert asked.stdout.split() == ["verify"]
    for command in ("run", "verify", "quantize", "eval", "bench", "pull"):
        text = run_zoo(command, "-h", check=True).stdout
        for leak in ("<int", "<str>", "<float", "<list[", "name <", "range>"):
            assert leak not in text, (command, leak)
    run_help = run_zoo("run", "-h", check=True).stdout
    assert "--threads INTEGER" in run_help and "INPUT..." in run_help and "--device cpu|gpu" in run_help


def test_registry_option_after_the_command(tmp_path):
    registry = tmp_path / "x.toml"
    registry.write_text('[models.mine]\narchitecture = "fcn"\nsummary = "mine"\n\n'
                        '[models.mine.weights]\nurls = ["http://127.0.0.1:9/none.pdparams"]\n')  # fmt: skip
    before = run_zoo("--registry", str(registry), "list", check=True).stdout
    after = run_zoo("list", "--registry", str(registry), check=True).stdout
    assert "mine" in after and after == before


def test_verify_takes_several_images_after_one_image_option_and_warns_in_one_line(models, tmp_path):
    models.install_converted(NAME)
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), np.random.default_rng(0).integers(0, 255, (64, 128), dtype=np.uint8))
    colour = tmp_path / "colour.png"
    cv2.imwrite(str(colour), np.random.default_rng(1).integers(0, 255, (64, 128, 3), dtype=np.uint8))
    proc = run_zoo("verify", NAME, "--image", str(gray), str(colour))
    assert proc.returncode in (0, 1), proc.stderr
    assert "2 image(s)" in proc.stderr and "gray.png:" in proc.stdout and "colour.png:" in proc.stdout
    warning = [line for line in proc.stderr.splitlines() if "grayscale" in line]
    assert warning == [f"zoo: warning: {gray}: grayscale image converted to 3 channels"]
    assert "UserWarning" not in proc.stderr and "warnings.warn" not in proc.stderr


def test_warnings_in_a_command_are_one_line_for_zoo_and_pythons_own_for_others():
    """A command's warnings are shown when its block ends: zoo's as one ``zoo: warning:`` line (main's hook), anyone
    else's as Python shows them. Replaying them inside the recording block used to record them again, for ever."""
    code = (
        "import warnings\n"
        "from zoo.cli import _one_line_warning\n"
        "from zoo.cli._app import zoo_warnings\n"
        "from zoo.runners.runtime import UntrainedWarning\n"
        "warnings.showwarning = _one_line_warning(warnings.showwarning)\n"
        "with zoo_warnings():\n"
        "    warnings.warn(UntrainedWarning('m is untrained'))\n"
        "    warnings.warn(UntrainedWarning('m is untrained'))\n"
        "    warnings.warn('a library warning')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 0, proc.stderr
    assert lines[:2] == ["zoo: warning: m is untrained"] * 2, lines
    assert lines[2:] == ["<string>:9: UserWarning: a library warning"], lines  # Python's format (-c: no source line)


def test_verify_model_from_python_prints_no_paddle_build_chatter(models):
    models.install_converted(NAME)
    code = f"import zoo; r = zoo.verify_model({NAME!r}, size=(32, 64), count=1); print(r.passed)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "ccache" not in proc.stderr


def test_eval_folder_without_labels_names_what_is_missing(models, tmp_path):
    models.install_converted(NAME)
    (tmp_path / "data" / "images").mkdir(parents=True)
    proc = run_zoo("eval", NAME, "--data", str(tmp_path / "data"))
    assert proc.returncode == 1
    assert "has images/ but no labels/" in proc.stderr and "no data set zoo knows" not in proc.stderr


def test_label_size_mismatch_is_written_height_by_width(tmp_path):
    from zoo.errors import DatasetError
    from zoo.measure import datasets

    label = tmp_path / "l.png"
    cv2.imwrite(str(label), np.zeros((100, 300), np.uint8))
    with pytest.raises(DatasetError, match=r"the label is 100x300 \(HxW\) but its image is 256x512"):
        datasets.read_label(label, (256, 512))


@pytest.mark.slow
def test_demo_uses_zoo_home_when_set_and_says_so(tmp_path):
    home = tmp_path / "my-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")} | {"ZOO_HOME": str(home)}
    demo = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(tmp_path / "d"),
                           "--size", "64x128"], capture_output=True, text=True, env=env, timeout=900)  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert f"  home:   {home} (your ZOO_HOME)" in demo.stdout
    assert f"  $ export ZOO_HOME={home}" in demo.stdout
    assert (home / "cache" / "refs" / "fcn-demo.json").is_file() and not (tmp_path / "d" / "zoo-home").exists()


@pytest.mark.parametrize(("url", "cause"), [
    ("http://127.0.0.1:9/fcn.tar", "connection refused"),
    ("http://no-such-host.invalid/fcn.tar", "DNS lookup failed"),
])  # fmt: skip
def test_failed_pull_is_one_line_with_its_cause_and_the_offline_route(tmp_path, url, cause):
    registry = tmp_path / "r.toml"
    registry.write_text(f'[models.far]\narchitecture = "fcn"\n\n[models.far.inference]\nurls = ["{url}"]\n\n'
                        f'[models.far.weights]\nurls = ["{url.replace(".tar", ".pdparams")}"]\n')  # fmt: skip
    env = {"ZOO_RETRIES": "0", "ZOO_TIMEOUT": "5"}
    proc = run_zoo("--registry", str(registry), "pull", "far", env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error: could not fetch 'far'"), proc.stderr
    assert cause in lines[0] and "'zoo export far --weights FILE'" in lines[0] and "--weights random" in lines[0]
    assert "--mirror" not in lines[0] and "gone" not in lines[0]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    proc = run_zoo("--registry", str(registry), "pull", "far", "--mirror", str(mirror), env=env)
    assert "pass --mirror" not in proc.stderr and "not in the mirror" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
