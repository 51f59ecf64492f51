"""One pipeline, two engines: ``zoo eval``/``zoo run --engine ray`` against the local engine, on a real local Ray.

The reference for every Ray result is the local engine run by the same CLI on the same data; the skip counts and the
files skipped come from how the test breaks the data set (one label missing, one that cannot be decoded).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_zoo
from tests.models import ModelStore, model_store, models  # noqa: F401 - fixtures
from tests.test_distributed import NAME, cluster, images_folder, unet  # noqa: F401 - fixtures

TIMING = ("seconds", "images_per_second")  # the only fields two runs may not share


def without_timing(d: dict) -> dict:
    """A zoo eval JSON without its wall-clock fields and its engine name."""
    out = {k: v for k, v in d.items() if k not in TIMING and k != "engine"}
    out["backends"] = {k: {f: v for f, v in b.items() if f not in TIMING} for k, b in d["backends"].items()}
    return out


def broken_dataset(root: Path) -> tuple[Path, list[str]]:
    """6 labelled scenes; scene0001's label deleted (found by the pre-check), scene0003's label a PNG whose header
    is right and whose pixels are garbage (found only when a worker decodes it). Returns (data, the 2 bad labels)."""
    from zoo.synthetic import write_labelled_dataset

    data = write_labelled_dataset(root / "data", 6, 48, 64, layout="folders", num_classes=4, ignore_border=2)
    missing, garbage = data / "labels" / "scene0001.png", data / "labels" / "scene0003.png"
    missing.unlink()
    head = garbage.read_bytes()[:33]  # signature + IHDR: the pre-check reads only this
    garbage.write_bytes(head + b"\x00\x00\x00\x10IDATnot-a-zlib-stream!" + b"\x00" * 64)
    return data, [str(missing), str(garbage)]


@pytest.mark.slow
@pytest.mark.ray
def test_ray_eval_equals_local_eval_report_json_and_skip_bad(cluster, unet, tmp_path: Path):
    data, bad = broken_dataset(tmp_path)
    common = ["eval", NAME, "--data", str(data), "--skip-bad", "--absent-one"]
    ray = ["--engine", "ray", "--address", cluster, "--workers", "2", "--batch-size", "2"]
    local = run_zoo(*common, "--threads", "1", "--json", "--report", str(tmp_path / "local"), check=True)
    on_ray = run_zoo(*common, *ray, "--json", "--report", str(tmp_path / "ray"), check=True)

    mine, theirs = json.loads(on_ray.stdout), json.loads(local.stdout)
    assert (mine["engine"], theirs["engine"]) == ("ray", "local")
    assert without_timing(mine) == without_timing(theirs)
    assert (mine["images"], mine["skipped"], mine["absent_iou"]) == (4, 2, 1.0)
    assert all(any(path in message for message in mine["skipped_samples"]) for path in bad)
    for proc in (local, on_ray):  # each skip is said on stderr, by both engines
        assert proc.stderr.count("zoo: skipped: ") == 2, proc.stderr

    # the report: the same files; the pictures byte for byte, eval.json equal but for timings and the engine
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*") if p.is_file())
    assert len([f for f in files if f.parts[0] == "worst"]) == 4
    assert Path("confusion_onnx.png") in files  # compared byte for byte below, its counts in eval.json
    confusion = mine["backends"]["onnx"]["confusion"]  # equal to the local engine's (the JSON comparison above)
    assert len(confusion) == 4 and sum(map(sum, confusion)) == mine["backends"]["onnx"]["pixels"] > 0
    for name in files:
        a, b = tmp_path / "local" / name, tmp_path / "ray" / name
        if name.suffix == ".json":
            assert without_timing(json.loads(b.read_text())) == without_timing(json.loads(a.read_text()))
        else:
            assert a.read_bytes() == b.read_bytes(), name

    # the per-class table, as printed by each engine, differs only in its images/s row
    tables = [run_zoo(*common, *extra, check=True).stdout.splitlines() for extra in (["--threads", "1"], ray)]
    assert [row for row in tables[1] if not row.startswith("images/s")] == \
        [row for row in tables[0] if not row.startswith("images/s")]  # fmt: skip
    assert any(row.startswith("IoU ") for row in tables[1])

    # without --skip-bad both engines stop at the same sample with the same one-line error
    strict = [run_zoo("eval", NAME, "--data", str(data), *extra) for extra in (["--threads", "1"], ray)]
    assert [p.returncode for p in strict] == [1, 1]
    assert strict[0].stderr.splitlines()[-1] == strict[1].stderr.splitlines()[-1]
    assert bad[0] in strict[1].stderr and "--skip-bad" in strict[1].stderr


@pytest.mark.ray
def test_both_ray_paths_run_the_tuned_choice_with_its_runner_options(cluster, unet, tmp_path: Path):
    """With no flags, `zoo eval` and `zoo run` on Ray take zoo tune's choice as the local engine does: its runner
    options reach the workers (ONNX Runtime's session, read back on a worker, has spinning on; zoo's default is off)
    and the JSON says the choice was tuned. An explicit --backend runs the defaults."""
    from zoo.registry import tuning
    from zoo.store import tuned
    from zoo.synthetic import write_labelled_dataset

    c = tuned.Choice("onnx", "fp32", 1, (("allow_spinning", 1),))
    tuned.write(NAME, {"name": NAME, "tuned_at": "2026-12-06T10:00:00Z", "choice": c.as_dict(),
                       "fingerprint": tuning.fingerprint(NAME, c), "criteria": {},
                       "summary": {"speedup_vs_paddle": 0.5, "agreement": 0.999}, "candidates": []})  # fmt: skip
    data = write_labelled_dataset(tmp_path / "data", 2, 48, 64, layout="folders", num_classes=4)
    ray = ["--engine", "ray", "--address", cluster, "--workers", "1", "--batch-size", "2"]

    doc = json.loads(run_zoo("eval", NAME, "--data", str(data), *ray, "--json", check=True).stdout)
    assert doc["backends"]["onnx"]["options"]["allow_spinning"] == 1 and doc["config"]["tuned"] is not None
    runs = json.loads(run_zoo("run", NAME, str(data / "images"), "--out", str(tmp_path / "out"), *ray, "--json",
                              check=True).stdout)  # fmt: skip
    assert len(runs) == 2
    assert all(r["config"]["tuned"] is not None and r["config"]["options"] == {"allow_spinning": 1} for r in runs)
    doc = json.loads(run_zoo("eval", NAME, "--data", str(data), "--backend", "onnx", *ray, "--json",
                             check=True).stdout)  # fmt: skip
    assert doc["backends"]["onnx"]["options"]["allow_spinning"] == 0 and doc["config"]["tuned"] is None


def test_an_option_one_engine_cannot_honour_is_refused_by_name(tmp_path: Path):
    """Refused before Ray starts or any model loads: these need no cluster."""
    from zoo.synthetic import write_labelled_dataset

    data = write_labelled_dataset(tmp_path / "data", 1, 32, 32, layout="folders", num_classes=4)
    cases = [
        (["eval", NAME, "--data", str(data), "--engine", "ray", "--threads", "2"],
         "zoo: error: --threads is for --engine local; on Ray, --threads-per-worker sets each worker's threads"),
        (["eval", NAME, "--data", str(data), "--workers", "3"],
         "zoo: error: --workers is for --engine ray; add --engine ray, or drop it"),
        (["run", NAME, str(data / "images"), "--out", str(tmp_path / "o"), "--batch-size", "2", "--address", "auto"],
         "zoo: error: --address, --batch-size are for --engine ray; add --engine ray, or drop them"),
        (["run", NAME, str(data / "images"), "--engine", "ray", "--threads", "2"],
         "zoo: error: --threads is for --engine local; on Ray, --threads-per-worker sets each worker's threads"),
    ]  # fmt: skip
    for args, line in cases:
        proc = run_zoo(*args)
        assert (proc.returncode, proc.stderr.strip()) == (1, line), args
    assert not (tmp_path / "o").exists()


def test_inputs_none_of_which_can_be_read_are_refused_alike_before_ray_starts(unet, tmp_path: Path):
    want = [f"zoo: error: {tmp_path / 'missing.png'}: no such file",
            f"zoo: error: {tmp_path / 'gone.jpg'}: no such file",
            "zoo: error: none of the 2 inputs can be read; give image files, folders or glob patterns"]  # fmt: skip
    for engine in ("local", "ray"):
        proc = run_zoo("run", NAME, str(tmp_path / "missing.png"), str(tmp_path / "gone.jpg"), "--out",
                       str(tmp_path / "out"), "--engine", engine)  # fmt: skip
        assert (proc.returncode, proc.stderr.splitlines()) == (1, want), engine
    assert not (tmp_path / "out").exists()


def zoo_command() -> list[str]:
    """The installed ``zoo`` script, as a user runs it (``python -m`` would put the working folder on sys.path)."""
    script = Path(sys.executable).with_name("zoo")
    return [str(script)] if script.is_file() else [sys.executable, "-P", "-m", "zoo"]


def checkout_parent(root: Path) -> Path:
    """A folder holding a checkout named ``zoo``: the repository's plugins/ and its zoo/ package folder inside."""
    parent = root / "parent"
    checkout = parent / "zoo"
    for folder in ("plugins/zoo_fcn", "zoo/registry", "zoo/engines"):
        (checkout / folder).mkdir(parents=True)
    (checkout / "plugins" / "zoo_fcn" / "__init__.py").write_text("raise SystemExit('the checkout was imported')\n")
    return parent


@pytest.mark.slow
@pytest.mark.ray
def test_ray_workers_import_the_installed_zoo_wherever_the_driver_starts(cluster, tmp_path: Path):
    """Ray puts the driver's folder first on its workers' sys.path, so a ``zoo`` folder there became the package
    (a namespace package of the checkout's folders). A job zoo connects imports the package the driver runs."""
    script = (
        "import sys, ray, zoo\n"
        "from zoo.engines import ray_cluster\n"
        "ray_cluster.connect(sys.argv[1])\n"
        "@ray.remote\n"
        "def where():\n"
        "    import zoo\n"
        "    return str(getattr(zoo, '__file__', None))\n"
        "print(zoo.__file__)\n"
        "print(ray.get(where.remote()))\n"
    )
    parent = checkout_parent(tmp_path)
    proc = subprocess.run([sys.executable, "-P", "-c", script, cluster], cwd=parent, capture_output=True, text=True,
                          timeout=300)  # fmt: skip  (-P: the driver itself does not look in its folder, as `zoo` does)
    assert proc.returncode == 0, proc.stderr
    driver, worker = proc.stdout.split()
    assert worker == driver and Path(driver).parent != parent / "zoo"


def zoo_command() -> list[str]:
    """The installed ``zoo`` script, as a user runs it (``python -m`` would put the working folder on sys.path)."""
    script = Path(sys.executable).with_name("zoo")
    return [str(script)] if script.is_file() else [sys.executable, "-P", "-m", "zoo"]


@pytest.mark.slow
@pytest.mark.ray
def test_ray_run_from_the_parent_folder_of_a_checkout_named_zoo(unet, tmp_path: Path):
    """zoo starts its own local Ray from there: relative inputs and --out mean what they mean in that folder, and
    stderr holds zoo's lines only (Ray's start-up and C++ log lines would show here too)."""
    parent = checkout_parent(tmp_path)
    shutil.copytree(images_folder(tmp_path, n=3), parent / "frames")
    env = {k: v for k, v in os.environ.items() if k != "ZOO_DEBUG"}
    proc = subprocess.run([*zoo_command(), "run", NAME, "frames", "--out", "masks", "--engine", "ray", "--json"],
                          cwd=parent, capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # the one broken file among the frames
    summaries = json.loads(proc.stdout)
    assert [s["input"] for s in summaries] == [f"frames/img0{i}.{'jpg' if i == 0 else 'png'}" for i in range(3)]
    assert all((parent / path).is_file() for s in summaries for path in s["outputs"].values())  # relative to cwd
    zoo_lines = [
        rf"zoo: warning: {NAME} is an untrained export \(random weights\).*",  # once, as the local engine says it
        rf"{NAME} \(\w+, \d+ classes\) on \w+, Ray: 2 worker\(s\) x 1 thread\(s\), batches of 8 → masks",
        r"zoo: \d+/4 images, [\d.]+ images/s",
        r"zoo: error: frames/broken\.png: .*",
        r"3 image\(s\) in [\d.]+ s \([\d.]+ images/s\); 1 of 4 inputs failed",
    ]
    lines = proc.stderr.splitlines()
    assert [line for line in lines if not any(re.fullmatch(p, line) for p in zoo_lines)] == [], proc.stderr
    assert re.fullmatch(zoo_lines[-1], lines[-1])
    assert sum(bool(re.fullmatch(zoo_lines[0], line)) for line in lines) == 1, proc.stderr

    # ZOO_DEBUG=1 keeps Ray's own lines, for a bug report
    debug = subprocess.run([*zoo_command(), "run", NAME, "frames", "--out", "again", "--engine", "ray"], cwd=parent,
                           capture_output=True, text=True, env={**env, "ZOO_DEBUG": "1"}, timeout=600)  # fmt: skip
    assert debug.returncode == 1, debug.stderr
    theirs = [line for line in debug.stderr.splitlines()
              if not line.startswith(("zoo:", NAME)) and not re.fullmatch(zoo_lines[-1], line)]  # fmt: skip
    assert any("ray" in line.lower() for line in theirs), debug.stderr


@pytest.mark.slow
@pytest.mark.ray
def test_ray_eval_runs_the_local_inference_modes(cluster, models: ModelStore, tmp_path: Path):
    """--flip and --scales on Ray are the local engine's own aug_inference: the same numbers, not a refusal."""
    from zoo.synthetic import write_labelled_dataset

    models.install_converted(NAME, output_op="none")  # logits, so scores can be averaged
    data = write_labelled_dataset(tmp_path / "data", 4, 48, 64, layout="folders", num_classes=4, ignore_border=2)
    common = ["eval", NAME, "--data", str(data), "--flip", "--scales", "0.75,1.0", "--json"]
    local = json.loads(run_zoo(*common, "--threads", "1", check=True).stdout)
    on_ray = json.loads(run_zoo(*common, "--engine", "ray", "--address", cluster, check=True).stdout)
    assert (on_ray["flip"], on_ray["scales"], on_ray["images"]) == (True, [0.75, 1.0], 4)
    assert without_timing(on_ray) == without_timing(local)
    whole = json.loads(run_zoo(*common[:4], "--json", "--threads", "1", check=True).stdout)
    ious = [[b["class_iou"] for b in d["backends"].values()] for d in (whole, local)]
    assert ious[0] != ious[1]  # the modes do change the numbers
