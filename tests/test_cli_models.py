"""zoo list / info / plugins / --version, their --json, the error handler, lazy imports and the Python API."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import zoo
from tests.conftest import run_zoo
from tests.discovered import packaged_models
from zoo.errors import UnknownModelError, ZooError

HEAVY = ("paddle", "paddle2onnx", "onnxruntime", "onnx", "cv2", "numpy")


def test_version():
    proc = run_zoo("--version", check=True)
    assert proc.stdout.strip() == f"zoo {zoo.__version__}" and zoo.__version__ != "0.0.0+unknown"


def test_list_table_and_json():
    table = run_zoo("list", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "ARCHITECTURE", "DATASET", "MIOU", "CACHED"]
    assert any(line.split()[:5] == ["fcn", "fcn", "cityscapes", "78.97", "-"] for line in table)
    rows = json.loads(run_zoo("list", "--json", check=True).stdout)
    assert [r["name"] for r in rows] == sorted(packaged_models())  # registry.toml, read without zoo
    fcn = next(r for r in rows if r["name"] == "fcn")
    assert fcn["architecture"] == "fcn" and fcn["miou"] == 78.97 and fcn["cached"] == [] and not fcn["untrained"]


def test_list_marks_cached_and_untrained(models):
    models.install("unet-tiny")
    rows = {r["name"]: r for r in json.loads(run_zoo("list", "--json", check=True).stdout)}
    assert rows["unet-tiny"]["cached"] == ["paddle"] and rows["unet-tiny"]["untrained"] is True
    assert rows["fcn"]["cached"] == []
    line = next(x for x in run_zoo("list", check=True).stdout.splitlines() if x.startswith("unet-tiny"))
    assert line.endswith("paddle (untrained)")
    info = json.loads(run_zoo("info", "unet-tiny", "--json", check=True).stdout)
    assert info["untrained"] is True and info["provenance"]["weights"] == "random"


def test_info_text_and_json():
    text = run_zoo("info", "deeplabv3p", check=True).stdout
    assert "config: deeplabv3p_resnet50_os8_cityscapes_1024x512_80k" in text and "sha256: unpinned" in text
    data = json.loads(run_zoo("info", "deeplabv3p", "--json", check=True).stdout)
    assert data["name"] == "deeplabv3p" and data["num_classes"] == 19 and data["train_size"] == [1024, 512]
    assert data["input"]["mean"] == [0.5, 0.5, 0.5] and data["labels"][0] == "road"
    assert set(data["artifacts"]) == {"weights"}  # no inference/ONNX copy of its config is documented (issue 11)


def test_plugins_table():
    lines = run_zoo("plugins", check=True).stdout.splitlines()
    assert lines[0].split() == ["NAME", "DISTRIBUTION", "VERSION", "STATUS"]
    assert any(line.split()[:2] == ["fcn", "zoo"] and line.endswith("ok") for line in lines)


@pytest.mark.parametrize("command", [["info", "fcm"], ["info", "fcm", "--json"]])
def test_unknown_name_exits_non_zero_with_suggestion(command):
    proc = run_zoo(*command)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == (
        "zoo: error: unknown model 'fcm'; did you mean 'fcn'? run 'zoo list' to see the available models"
    )


def test_usage_error_exits_2():
    proc = run_zoo("list", "--no-such-option")
    assert proc.returncode == 2 and "No such option" in proc.stderr


def test_info_text_shows_input_labels_pins_and_provenance(models):
    """What README promises of `zoo info NAME`, in the text too: input spec, labels, provenance, zoo.lock's pin."""
    from zoo.store import pins

    models.install("unet-tiny")
    digest = "sha256:" + "ab" * 32
    pins.record("unet-tiny/weights", digest, 1234, "http://127.0.0.1:9/unet-tiny/model.pdparams")
    text = run_zoo("info", "unet-tiny", check=True).stdout
    # the plugin's documented preprocessing (tests/plugins/zoo_unet_dist: ImageNet statistics) and classes
    assert "input: RGB NCHW float32, (x / 255 - mean) / std, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)" in text
    assert "labels (4): background, road, vehicle, sky" in text
    assert f"sha256: {digest} (zoo.lock" in text and "size 1234" in text and "unpinned" not in text
    assert "provenance: source export" in text and "weights random" in text and "seed 0" in text
    data = json.loads(run_zoo("info", "unet-tiny", "--json", check=True).stdout)
    assert data["pins"]["weights"]["sha256"] == digest


# ---- one-line errors, usage lines, --size ---------------------------------------------------------------------------


def _one_line(proc) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "command"),
    [(["run"], "zoo run"), (["list", "--no-such-option"], "zoo list"), (["cache", "rm"], "zoo cache rm"),
     (["bundle", "export", "x"], "zoo bundle export"), (["nosuch"], "zoo"), (["--registry"], "zoo")],
)  # fmt: skip
def test_usage_errors_are_one_line_ending_with_help(argv, command):
    proc = run_zoo(*argv)
    assert proc.returncode == 2
    assert _one_line(proc).endswith(f"; see '{command} --help'")


def test_a_bundle_that_is_not_a_tar_is_one_line(tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 600)
    proc = run_zoo("bundle", "import", str(fake))
    assert proc.returncode == 1 and str(fake) in _one_line(proc) and "Traceback" not in proc.stderr


def test_unexpected_errors_are_one_line():
    from zoo.cli import error_line

    line = error_line(RuntimeError("first\nsecond"))
    assert "\n" not in line and line.startswith("RuntimeError: first second") and "ZOO_DEBUG=1" in line
    assert error_line(PermissionError(13, "Permission denied", "/x")).startswith("/x: Permission denied")


def _all_commands():
    import typer.main

    from zoo.cli import app

    def walk(group, path):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from walk(cmd, [*path, name])
            else:
                yield [*path, name]

    return list(walk(typer.main.get_command(app), []))


@pytest.mark.parametrize("argv", _all_commands(), ids=" ".join)
def test_usage_lines_read_like_click(argv):
    usage = run_zoo(*argv, "--help", check=True).stdout.splitlines()[0]
    assert usage.startswith(f"Usage: zoo {' '.join(argv)}")
    assert "{" not in usage and "}" not in usage and usage.endswith("[OPTIONS]"), usage


def test_usage_line_of_run():
    assert run_zoo("run", "--help", check=True).stdout.splitlines()[0] == "Usage: zoo run NAME INPUT... [OPTIONS]"


@pytest.mark.parametrize("command", ["verify", "bench"])
def test_size_is_parsed_one_way_with_one_message(command):
    errors = []
    for size in ("7by9", "0x5"):
        proc = run_zoo(command, "no-such-model", "--size", size)
        assert proc.returncode == 2
        errors.append(_one_line(proc).replace(f"'zoo {command} --help'", "'zoo CMD --help'"))
    assert errors[0] == ("zoo: error: Invalid value for --size: expected HxW with positive numbers, such as 512x1024, "
                         "got '7by9'; see 'zoo CMD --help'")  # fmt: skip
    for size in ("7x9", "7X9", "7×9"):  # accepted: the error is then about the model, not the size
        proc = run_zoo(command, "no-such-model", "--size", size)
        assert proc.returncode == 1 and "unknown model 'no-such-model'" in _one_line(proc)


@pytest.mark.parametrize(("text", "size"), [("512x1024", (512, 1024)), ("32X48", (32, 48)), ("7×9", (7, 9)),
                                            (" 7 x 9 ", (7, 9))])  # fmt: skip
def test_parse_size(text, size):
    from zoo.cli._app import parse_size

    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["512", "0x10", "axb", "1x2x3", "-1x4", "x"])
def test_parse_size_rejects(text):
    import typer

    from zoo.cli._app import parse_size

    with pytest.raises(typer.BadParameter, match="--size|HxW"):
        parse_size(text)


def test_verify_of_an_unknown_model_says_only_the_error():
    proc = run_zoo("verify", "nosuch")
    assert proc.returncode == 1 and "unknown model 'nosuch'" in _one_line(proc)  # no "verifying nosuch…" first


def test_cache_ls_counts_in_singular_and_plural(models):
    models.install("unet-tiny")
    proc = run_zoo("cache", "ls", check=True)
    assert proc.stderr.startswith("1 model, 1 entry, 0 blobs, "), proc.stderr


def _imported(argv: list[str], modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``zoo ARGV``."""
    code = (
        "import sys\nfrom zoo.cli import main\ncode = main(sys.argv[1:])\n"
        f"found = sorted(m for m in {modules!r} if m in sys.modules)\n"
        "print('FOUND=' + ','.join(found), file=sys.stderr)\nsys.exit(code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = proc.stderr.rsplit("FOUND=", 1)[1].strip()
    return found.split(",") if found else []


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["list", "--json"], ["info", "fcn"], ["plugins"]])
def test_light_commands_import_no_heavy_library(argv):
    assert _imported(argv, HEAVY) == []


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["list", "--json"], ["plugins"], ["cache", "ls"]])
def test_commands_with_only_flags_start_without_pydantic(argv):
    """typer 0.29 coerces every non-bool parameter value with pydantic (~70 ms of imports); zoo keeps an unset --help
    a bool and parses --registry itself, so these commands never pay it (BENCHMARKS.md, section 5)."""
    assert _imported(argv, ("pydantic", "zoo.store.housekeeping" if argv != ["cache", "ls"] else "paddle")) == []


def test_help_still_works_on_every_level():
    for argv in (["list", "--help"], ["cache", "--help"], ["cache", "ls", "--help"], ["pull", "--help"]):
        proc = run_zoo(*argv, check=True)
        assert proc.stdout.startswith(f"Usage: zoo {' '.join(argv[:-1])}"), proc.stdout


def test_python_api():
    names = [m.name for m in zoo.list_models()]
    assert names == sorted(names) and {"fcn", "danet"} <= set(names)
    entry = zoo.get("fcn")
    assert isinstance(entry, zoo.ModelEntry) and entry.config == "fcn_hrnetw18_cityscapes_1024x512_80k"
    with pytest.raises(AttributeError):
        entry.miou = 1.0  # type: ignore[misc]
    with pytest.raises(UnknownModelError):
        zoo.get("nope")
    with pytest.raises(KeyError):  # the builtin it also is
        zoo.get("nope")
    assert zoo.architecture("fcn").name == "fcn"
    assert {p.name for p in zoo.list_plugins()} >= {"fcn", "bisenet"}
    assert issubclass(UnknownModelError, ZooError)
    assert set(zoo.__all__) >= {"get", "list_models", "list_plugins", "architecture", "ZooError"}
