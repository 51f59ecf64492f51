"""The Ray engine's progress as a person at a terminal sees it: ``zoo run`` and ``zoo eval --engine ray`` with stderr on
a real pseudo-terminal (tests/terminal.py), zoo starting its own local Ray as a user's first run does.

What is expected comes from the commands' inputs (how many images the test wrote), not from the engine: a spinner
while Ray starts (several seconds), then the count reaching N/N on the terminal; stdout holds only the results, no line
is wider than the terminal, and none of Ray's own start-up or log lines (``INFO``, ``Started a local Ray instance``,
``(pid=...)``, ``raylet``) is shown.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.models import ModelStore, model_store, models  # noqa: F401 - fixtures
from tests.terminal import final_lines, run_on_terminal
from tests.test_distributed import NAME, images_folder, unet  # noqa: F401 - fixtures

COLUMNS = 80
RAY_LINES = re.compile(r"Started a local Ray|\(pid=|raylet|INFO |WARNING |worker\.py|Ray Data|Running Dataset|"
                       r"ray\.data|\[\d{4}-\d\d-\d\d ")  # what Ray itself prints when it is let through


def assert_terminal_clean(screen: str) -> list[str]:
    """The lines left on the terminal: none wider than it, none of Ray's own; while Ray started, a spinner said so."""
    assert re.search(r"[|/\\-] starting a local Ray \(\d+ s\)", screen), screen
    lines = final_lines(screen)
    assert all(len(line) <= COLUMNS for line in lines), [line for line in lines if len(line) > COLUMNS]
    assert not RAY_LINES.search(screen), screen
    return lines


@pytest.mark.slow
@pytest.mark.ray
def test_ray_run_counts_images_to_n_of_n_on_a_terminal(unet, tmp_path: Path):
    n = 6
    folder = images_folder(tmp_path, n=n, bad=False)
    code, out, screen = run_on_terminal("run", NAME, str(folder), "--out", str(tmp_path / "out"), "--engine", "ray",
                                        "--json", columns=COLUMNS)  # fmt: skip
    assert code == 0, screen
    summaries = json.loads(out)  # stdout: the results only, progress went to the terminal (stderr)
    assert len(summaries) == n and f"{n}/{n}" not in out
    assert re.search(rf"\b{n}/{n} images\b", screen), screen  # drawn to the end
    assert re.search(rf"\b[0-{n - 1}]/{n} images\b", screen), screen  # and before it: a count that moves
    lines = assert_terminal_clean(screen)
    assert any(re.search(rf"{n} image\(s\) in [\d.]+ s", line) for line in lines), lines


@pytest.mark.slow
@pytest.mark.ray
def test_ray_eval_counts_images_to_n_of_n_on_a_terminal(unet, tmp_path: Path):
    from zoo.synthetic import write_labelled_dataset

    n = 5
    data = write_labelled_dataset(tmp_path / "data", n, 48, 64, layout="folders", num_classes=4)
    code, out, screen = run_on_terminal("eval", NAME, "--data", str(data), "--engine", "ray", "--json",
                                        columns=COLUMNS)  # fmt: skip
    assert code == 0, screen
    result = json.loads(out)
    assert result["engine"] == "ray" and result["images"] == n and f"{n}/{n}" not in out
    assert re.search(rf"\b{n}/{n}\b", screen), screen
    assert re.search(rf"\b[0-{n - 1}]/{n}\b", screen), screen
    assert_terminal_clean(screen)
