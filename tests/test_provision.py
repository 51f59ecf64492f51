"""A newcomer's next steps: a cached model works by name without its registry file; `zoo run` / `zoo.load` on an
empty cache pull and convert what is missing; and every piece of advice is a command that works when run next.

The model is unet-tiny (the zoo-unet test plugin, seeded random weights), packed as a PaddleSeg-style inference
archive and served from a real HTTP server on 127.0.0.1 under a name only a temporary registry file knows.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.http_server import http_server  # noqa: F401 - fixture
from tests.test_images import street, write

NAME = "unet-served"


@pytest.fixture
def served(http_server, models, tmp_path: Path) -> Path:  # noqa: F811
    """A registry file naming NAME, whose inference archive the loopback server holds."""
    url = http_server.add(f"/{NAME}.tar", models.archive("unet-tiny", top=NAME))
    registry = tmp_path / "served-registry.toml"
    registry.write_text(
        f'[models.{NAME}]\narchitecture = "unet"\nsummary = "served on loopback"\nnum_classes = 4\n'
        f'[models.{NAME}.inference]\nurls = ["{url}"]\n'
    )
    return registry


def advice(stderr: str) -> list[str]:
    """The commands an error message tells the user to run, in order."""
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("zoo: error: "), stderr
    return re.findall(r"'((?:[A-Z_]+=\S* )*zoo [^']*)'", line)


def run_advice(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run an advised command as a shell would: leading VAR=value words set the environment."""
    words = shlex.split(command)
    extra = {}
    while "=" in words[0] and words[0] != "zoo":
        key, value = words.pop(0).split("=", 1)
        extra[key] = value
    assert words[0] == "zoo", command
    return run_zoo(*words[1:], env={**env, **extra})


def test_run_on_an_empty_cache_pulls_and_converts_with_progress(served: Path, tmp_path: Path, zoo_home: Path):
    image = write(tmp_path / "s.png", street())
    proc = run_zoo("--registry", str(served), "run", NAME, str(image), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert f"{NAME}: not in the cache yet; pulling it ('zoo --registry {served} pull {NAME}')" in proc.stderr
    assert f"{NAME}: converting it to ONNX" in proc.stderr
    assert (tmp_path / "out" / "s.labels.png").is_file()
    from zoo.store import cache

    assert cache.cached_formats(NAME) == ["paddle", "onnx"]


def test_load_on_an_empty_cache_pulls_and_converts(served: Path, capfd: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch):
    import zoo

    monkeypatch.setenv("ZOO_REGISTRY", str(served))
    model = zoo.load(NAME)
    assert model.architecture.name == "unet" and model.num_classes == 4
    err = capfd.readouterr().err
    assert "pulling it" in err and "converting it to ONNX" in err
    assert model.predict(street()).shape == street().shape[:2]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_offline_advice_is_a_command_that_works(served: Path, tmp_path: Path, how: str):
    image = write(tmp_path / "s.png", street())
    env = {"ZOO_REGISTRY": str(served)}
    args = ["run", NAME, str(image), "--out", str(tmp_path / "out")]
    if how == "flag":
        args.append("--offline")
    else:
        env["ZOO_OFFLINE"] = "1"
    first = run_zoo(*args, env=env)
    assert first.returncode == 1 and len(first.stderr.splitlines()) == 1, first.stderr
    assert ("--offline" if how == "flag" else "ZOO_OFFLINE=1") in first.stderr
    commands = advice(first.stderr)
    assert commands == ([f"zoo pull {NAME}"] if how == "flag" else [f"ZOO_OFFLINE=0 zoo pull {NAME}"])
    for command in commands:
        assert run_advice(command, env).returncode == 0, command
    again = run_zoo(*args, env=env)  # still offline: converting needs no network
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "out" / "s.labels.png").is_file()


def test_convert_before_pull_pulls_first_like_every_command(served: Path):
    env = {"ZOO_REGISTRY": str(served)}
    proc = run_zoo("convert", NAME, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.index("pulling it") < proc.stderr.index(f"converting {NAME} to ONNX")
    from zoo.store import cache

    assert cache.cached_formats(NAME) == ["paddle", "onnx"] and Path(proc.stdout.strip()) == cache.onnx_model_path(NAME)
    offline = run_zoo("convert", NAME, "--force", env={**env, "ZOO_OFFLINE": "1"})  # converting needs no network
    assert offline.returncode == 0, offline.stderr


def test_missing_onnx_advice_names_the_command_that_works(served: Path, monkeypatch: pytest.MonkeyPatch):
    from zoo.store import cache
    from zoo.errors import NotCachedError

    env = {"ZOO_REGISTRY": str(served)}
    with pytest.raises(NotCachedError) as info:
        cache.onnx_model_path(NAME)
    commands = advice(f"zoo: error: {info.value}")
    assert commands == [f"zoo convert {NAME}"]  # it pulls what it needs first
    for command in commands:
        assert run_advice(command, env).returncode == 0, command
    assert cache.onnx_model_path(NAME).is_file()


def test_a_cached_model_works_by_name_without_its_registry(served: Path, tmp_path: Path, zoo_home: Path):
    run_zoo("--registry", str(served), "pull", NAME, "--quiet", check=True)
    served.unlink()  # the registry file is gone; the cache still holds the model and knows what it is
    image = write(tmp_path / "s.png", street())
    ran = run_zoo("run", NAME, str(image), "--out", str(tmp_path / "out"), "--offline")
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "out" / "s.labels.png").is_file()
    info = json.loads(run_zoo("info", NAME, "--json", check=True).stdout)
    assert info["architecture"] == "unet" and info["num_classes"] == 4 and info["summary"] == "served on loopback"
    assert info["cached"] == ["paddle", "onnx"]
    assert info["artifacts"]["inference"]["urls"][0].endswith(f"/{NAME}.tar")  # so 'zoo pull --force' still works
    text = run_zoo("info", NAME, check=True).stdout
    assert "architecture: unet" in text and "registry: cache: " in text and "no registry names it" in text
    assert run_zoo("verify", NAME, "--size", "32x48", "--count", "1").returncode == 0
    unknown = run_zoo("run", "unet-servd", str(image))
    assert unknown.returncode == 1 and "unknown model 'unet-servd'" in unknown.stderr


def test_an_export_is_described_by_its_provenance_without_a_registry(models, tmp_path: Path):
    """A model exported under a registry name that is gone: the export's provenance names its architecture."""
    from zoo.registry import catalog
    from zoo.store import cache

    models.install("unet-tiny")
    ref = cache.get_ref("unet-tiny")
    cache.set_ref("my-unet", "paddle", {k: v for k, v in ref["paddle"].items() if k != "updated"})
    entry = catalog.resolve("my-unet").entry
    assert (entry.architecture, entry.num_classes) == ("unet", 4)
    image = write(tmp_path / "s.png", street())
    proc = run_zoo("run", "my-unet", str(image), "--out", str(tmp_path / "out"), "--backend", "paddle")
    assert proc.returncode == 0, proc.stderr
    labels = cv2.imread(str(tmp_path / "out" / "s.labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == street().shape[:2] and labels.max() < 4 and labels.dtype == np.uint8


def test_no_ref_no_entry():
    from zoo.registry import remembered

    assert remembered.cached_description("nothing-here") is None
    assert remembered.cached_description("../escape") is None  # not a model name: never a path outside refs/


def _env_without_zoo() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")} | {"PATH": os.environ["PATH"]}


@pytest.mark.slow
def test_demo_ends_with_commands_that_work(tmp_path: Path):
    """scripts/demo.py, then the commands it prints to go on, in a fresh shell with no zoo variable set."""
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "demo-out"
    demo = subprocess.run([sys.executable, str(repo / "scripts" / "demo.py"), "--out", str(out), "--size", "64x128"],
                          capture_output=True, text=True, env=_env_without_zoo(), timeout=900)  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    commands = [line.split("$ ", 1)[1] for line in demo.stdout.splitlines() if line.startswith("  $ ")]
    assert commands and commands[0].startswith("export ZOO_HOME=")
    zoo_bin = Path(sys.executable).parent  # `zoo` as the user's venv provides it
    env = _env_without_zoo() | {"PATH": f"{zoo_bin}{os.pathsep}{os.environ['PATH']}"}
    script = "set -e\n" + "\n".join(commands) + "\n"
    shell = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert shell.returncode == 0, shell.stdout + shell.stderr
    assert "fcn-demo" in shell.stdout  # zoo info / list / cache ls name it
    assert (out / "run-again" / "street.labels.png").is_file()
