"""zoo tune: candidates judged as zoo verify judges them, the choice recorded with its fingerprint and used by default.

Real seeded exports of bisenet (its random-weight int8 variant flips 1-6% of the labels, so a strict threshold must
reject it). Expected values come from elsewhere than tune: `zoo verify` on the same images, the cache's own refs,
the record file as written, and ONNX Runtime's session options read back from the session.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from tests.conftest import run_zoo

NAME = "bisenet"
SIZE = "64x128"
FAST = ["--size", SIZE, "--rounds", "1", "--runs", "1", "--warmup", "0", "--quiet-wait", "0"]


def _image(tmp_path: Path) -> Path:
    from zoo.synthetic import street_scene

    path = tmp_path / "street.png"
    cv2.imwrite(str(path), street_scene(64, 128, seed=7)[:, :, ::-1])
    return path


def _tune(*args: str) -> dict:
    proc = run_zoo("tune", NAME, *FAST, *args, "--json", check=True)
    return json.loads(proc.stdout)


@pytest.mark.slow  # several CLI processes, each loading paddle; end to end
def test_strict_agreement_chooses_float32_with_the_numbers_zoo_verify_gives(models, tmp_path: Path):
    models.install_converted(NAME)
    report = tmp_path / "report"
    doc = _tune("--backend", "paddle,onnx", "--precision", "fp32,int8", "--min-agreement", "0.99999",
                "--report", str(report))  # fmt: skip
    rows = {r["key"]: r for r in doc["candidates"]}
    int8 = rows["onnx/int8 t2"] if "onnx/int8 t2" in rows else next(r for r in rows.values() if r["precision"] == "int8")
    assert int8["agreement"] < 0.99999, "the seeded int8 variant must flip labels for this test to mean anything"
    assert doc["chosen"]["precision"] == "fp32" and doc["chosen"]["agreement"] >= 0.99999
    for row in doc["candidates"]:  # every candidate says why it was or was not chosen
        assert row["why"], row
        if row["precision"] == "int8":
            assert row["passed"] is False and row["why"].startswith("fails:") and "labels <" in row["why"]
    assert doc["chosen"]["why"].startswith("chosen:")
    assert {p.name for p in report.iterdir()} >= {"tune.json", "tune.html", "tune.png"}
    png = cv2.imread(str(report / "tune.png"))
    assert png is not None and png.shape[2] == 3
    assert doc["chosen"]["key"] in (report / "tune.html").read_text()

    # the same images and comparison as `zoo verify --precision int8` (synthetic, seed 0, 2 images at SIZE)
    verify = json.loads(run_zoo("verify", NAME, "--precision", "int8", "--size", SIZE, "--json",
                                "--min-agreement", "0.99999").stdout)  # fmt: skip
    assert verify["overall"]["agreement"] == int8["agreement"]
    assert verify["passed"] is False
    # and `zoo verify --tuned` re-checks the recorded choice with the threshold it was chosen by
    proc = run_zoo("verify", NAME, "--tuned", "--json")
    again = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    chosen = f"{doc['chosen']['backend']}/{doc['chosen']['precision']}"  # verify names sides backend/precision
    assert again["candidate"] == chosen and again["tolerance"]["min_agreement"] == 0.99999
    assert again["overall"]["agreement"] == doc["chosen"]["agreement"]


@pytest.mark.slow
def test_tuned_choice_is_the_default_flags_win_and_a_new_export_makes_it_stale(models, tmp_path: Path):
    import zoo
    from zoo.store import cache

    models.install_converted(NAME)
    image = _image(tmp_path)
    doc = _tune("--backend", "paddle", "--precision", "fp32")  # one candidate: the choice is known in advance
    assert doc["chosen"]["backend"] == "paddle" and doc["chosen"]["precision"] == "fp32"

    runs = json.loads(run_zoo("run", NAME, str(image), "--out", str(tmp_path / "a"), "--json", check=True).stdout)
    assert runs[0]["backend"] == "paddle" and runs[0]["config"]["tuned"]["choice"]["backend"] == "paddle"
    assert "tuned " in runs[0]["config"]["tuned"]["summary"] and "float32 Paddle" in runs[0]["config"]["tuned"]["summary"]
    for flags, backend in ((["--backend", "onnx"], "onnx"), (["--precision", "fp32"], "onnx")):  # explicit flags win
        out = run_zoo("run", NAME, str(image), "--out", str(tmp_path / "b"), "--json", *flags, check=True)
        first = json.loads(out.stdout)[0]
        assert first["backend"] == backend and first["config"]["tuned"] is None
    assert zoo.load(NAME).backend == "paddle" and zoo.load(NAME, backend="onnx").backend == "onnx"
    bench = json.loads(run_zoo("bench", NAME, "--size", SIZE, "--runs", "1", "--warmup", "0", "--json",
                               check=True).stdout)  # fmt: skip
    assert list(bench["backends"])[0] == "tuned" and bench["backends"]["tuned"]["backend"] == "paddle"
    assert bench["backends"]["tuned"]["tuned"]["choice"]["precision"] == "fp32" and "onnx/fp32" in bench["backends"]

    before = cache.get_ref(NAME)["paddle"]["key"]
    models.install(NAME, seed=1)  # a re-export: other weights, another Paddle model in the cache
    assert cache.get_ref(NAME)["paddle"]["key"] != before
    info = json.loads(run_zoo("info", NAME, "--json", check=True).stdout)
    assert info["tuned"]["valid"] is False and f"zoo tune {NAME}" in info["tuned"]["note"] and "model" in info["tuned"]["note"]
    proc = run_zoo("run", NAME, str(image), "--out", str(tmp_path / "c"), "--json", check=True)
    assert json.loads(proc.stdout)[0]["backend"] == "onnx"
    assert "stale" in proc.stderr and f"zoo tune {NAME}" in proc.stderr

    removed = run_zoo("cache", "rm", NAME, "--variant", "tuned", check=True)
    assert "removed" in removed.stdout
    assert json.loads(run_zoo("info", NAME, "--json", check=True).stdout)["tuned"] is None


def _record(choice: dict) -> dict:
    """A record as zoo tune writes one, valid for this machine and the cached model."""
    from zoo.registry import tuning
    from zoo.store import tuned

    c = tuned.Choice.from_dict(choice)
    return {"name": NAME, "tuned_at": "2026-12-05T10:00:00Z", "choice": c.as_dict(),
            "fingerprint": tuning.fingerprint(NAME, c), "criteria": {}, "summary": {"speedup_vs_paddle": 0.5,
            "agreement": 0.999}, "candidates": []}  # fmt: skip


def test_a_fingerprint_mismatch_is_ignored_with_a_note(models):
    from zoo.runners import runtime
    from zoo.store import tuned

    models.install(NAME)
    record = _record({"backend": "paddle", "precision": "fp32", "threads": 1})
    tuned.write(NAME, record)
    assert runtime.choose(NAME).backend == "paddle" and runtime.choose(NAME).threads == 1
    assert runtime.choose(NAME, threads=2).threads == 2  # an explicit thread count wins too
    other = json.loads(json.dumps(record))
    other["fingerprint"]["machine"]["cpu"] = "Another CPU"
    tuned.write(NAME, other)
    chosen = runtime.choose(NAME)
    assert (chosen.backend, chosen.precision, chosen.tuned) == ("onnx", "fp32", None)
    assert "the machine" in chosen.note and f"zoo tune {NAME}" in chosen.note
    other["fingerprint"]["versions"]["zoo"] = "0.0.0-other"
    other["fingerprint"]["machine"] = record["fingerprint"]["machine"]
    tuned.write(NAME, other)
    assert "version" in runtime.choose(NAME).note


def test_bundles_carry_the_choice_and_the_importer_checks_its_fingerprint(models, tmp_path: Path, monkeypatch):
    from zoo.registry import tuning
    from zoo.make import bundle
    from zoo.store import tuned

    models.install(NAME)
    tuned.write(NAME, _record({"backend": "paddle", "precision": "fp32", "threads": 2}))
    tar = tmp_path / "b.tar"
    bundle.export_bundle([NAME], tar)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "other-home"))
    bundle.import_bundle(tar)
    assert tuned.path(NAME).is_file() and tuning.read(NAME) is not None  # same machine: used
    doc = tuned.load_doc(NAME)
    doc["fingerprint"]["machine"]["cores"] = 1000  # what another machine would see
    tuned.write(NAME, doc)
    assert tuning.read(NAME) is None and "the machine" in tuning.status(NAME)[1]


def test_eval_runs_the_tuned_threads_and_runner_options_and_says_what_ran(models, tmp_path: Path):
    """A tuned choice is more than a backend and a precision: `zoo eval` with no flags runs its thread count and its
    runner options (read back from ONNX Runtime's session per column); --threads and --backend win over them."""
    from zoo.store import tuned
    from zoo.synthetic import write_labelled_dataset

    models.install_converted(NAME)
    data = write_labelled_dataset(tmp_path / "data", 2, 32, 64, layout="folders")
    tuned.write(NAME, _record({"backend": "onnx", "precision": "fp32", "threads": 1, "options": {"allow_spinning": 1}}))

    def column(*flags: str) -> tuple[dict, dict]:
        doc = json.loads(run_zoo("eval", NAME, "--data", str(data), "--json", *flags, check=True).stdout)
        assert list(doc["backends"]) == ["onnx"]
        return doc["backends"]["onnx"], doc["config"]

    ran, config = column()
    assert (ran["threads"], ran["options"]["allow_spinning"]) == (1, 1) and config["tuned"] is not None
    ran, _ = column("--threads", "2")
    assert (ran["threads"], ran["options"]["allow_spinning"]) == (2, 1)
    ran, config = column("--backend", "onnx")
    assert ran["options"]["allow_spinning"] == 0 and config["tuned"] is None  # zoo's default: spinning off


@pytest.mark.slow  # a tune and two evals, each loading paddle
def test_data_bounds_the_miou_drop_on_the_users_images_with_progress_per_candidate(models, tmp_path: Path):
    """--data: the labels are float32 Paddle's own predictions, so Paddle scores IoU 1 on every class present and
    every candidate that flips a pixel loses some. With no agreement bound and --max-miou-drop 0, exactly the candidates that lose nothing
    pass; the int8 variant (1-6% of labels flipped) fails on its drop. Each mIoU is zoo eval's on the same data, the
    agreement zoo verify's on the --images given, and every candidate gets a progress line."""
    import re

    import zoo
    from zoo.synthetic import write_labelled_dataset

    models.install_converted(NAME)
    data = write_labelled_dataset(tmp_path / "data", 2, 64, 128, layout="folders")
    paddle = zoo.load(NAME, backend="paddle", threads=2)  # as tune's reference runs it (--threads 2)
    present: set[int] = set()
    for image in sorted((data / "images").iterdir()):
        labels = paddle.predict(str(image)).labels.astype("uint8")
        cv2.imwrite(str(data / "labels" / image.name), labels)
        present |= {int(v) for v in set(labels.ravel().tolist())}
    perfect = round(100 * len(present) / 19, 4)  # IoU 1 for each class present, 0 for the absent (zoo eval's default)
    proc = run_zoo("tune", NAME, *FAST, "--backend", "onnx", "--precision", "fp32,int8", "--threads", "2",
                   "--data", str(data), "--images", str(data / "images"), "--min-agreement", "0.0001",
                   "--max-miou-drop", "0", "--json", check=True)  # fmt: skip
    doc = json.loads(proc.stdout)
    rows = {r["key"]: r for r in doc["candidates"]}
    assert rows["paddle/fp32 t2"]["miou"] == perfect and rows["paddle/fp32 t2"]["miou_drop"] == 0.0
    int8 = rows["onnx/int8 t2"]
    assert int8["miou_drop"] > 0 and int8["passed"] is False and "mIoU drop" in int8["why"]
    for row in doc["candidates"]:
        assert row["passed"] is (row["miou_drop"] <= 0), row
    assert doc["chosen"]["key"] in rows and rows[doc["chosen"]["key"]]["passed"] is True

    evaluated = json.loads(run_zoo("eval", NAME, "--data", str(data), "--precision", "int8", "--json",
                                   check=True).stdout)  # fmt: skip
    assert round(evaluated["backends"]["onnx/int8"]["miou"] * 100, 4) == int8["miou"]
    verify = json.loads(run_zoo("verify", NAME, "--precision", "int8", "--image", str(data / "images"), "--json",
                                check=True).stdout)  # fmt: skip
    assert verify["overall"]["agreement"] == int8["agreement"]

    steps = re.findall(r"\[(\d+)/(\d+)\] (.+?): fastest", proc.stderr)
    assert sorted(key for _, _, key in steps) == sorted(rows)  # one line per candidate (one round)
    assert [int(k) for k, _, _ in steps] == list(range(1, len(rows) + 1))
    assert {n for _, n, _ in steps} == {str(len(rows))}


def test_onnx_runner_takes_the_spinning_option_tune_measures(models):
    from zoo.errors import BackendError
    from zoo.runners import runtime

    path = models.install_converted(NAME)
    spinning = runtime.load(path, backend="onnx", options={"allow_spinning": 1})
    assert spinning.runner.describe()["options"]["allow_spinning"] == 1  # read back from ONNX Runtime
    assert runtime.load(path, backend="onnx").runner.describe()["options"]["allow_spinning"] == 0
    with pytest.raises(BackendError, match="no option"):
        runtime.load(path, backend="onnx", options={"turbo": 1})


def test_dry_run_lists_the_candidates_and_makes_nothing(models):
    from zoo.store import cache

    models.install_converted(NAME)
    proc = run_zoo("tune", NAME, "--dry-run", "--backend", "onnx,paddle", check=True)
    lines = proc.stdout.splitlines()
    assert any("paddle/fp32" in line and "(reference)" in line for line in lines)
    assert any("onnx/int8" in line and "spin" in line for line in lines)
    assert "make the onnx-int8 variant first" in proc.stdout
    assert "onnx-int8" not in cache.variants(NAME) and not (cache.root() / "tuned").exists()


@pytest.mark.slow  # a tune and a verify, each loading paddle
def test_a_bf16_run_that_falls_short_gets_a_float32_tail_judged_like_every_candidate(models, tmp_path: Path):
    """Seeded deeplabv3p at 64x128: OpenVINO bf16 alone flips more than 0.5% of one scene's labels. Tune searches
    the layers to keep in f32 and adds that configuration, which passes zoo verify's comparison and is chosen; its
    mIoU (--data) is its own, and `zoo eval` with no flags runs it, f32 layers included, to the same number."""
    pytest.importorskip("openvino")
    import openvino

    from zoo.synthetic import write_labelled_dataset

    if "BF16" not in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bfloat16 for OpenVINO")
    models.install_converted("deeplabv3p")
    data = write_labelled_dataset(tmp_path / "data", 2, 64, 128, layout="folders")
    proc = run_zoo("tune", "deeplabv3p", "--backend", "paddle,openvino", "--precision", "fp32,bf16", *FAST, "--json",
                   "--data", str(data), "--max-miou-drop", "100", check=True)  # fmt: skip
    doc = json.loads(proc.stdout)
    rows = [r for r in doc["candidates"] if r["backend"] == "openvino" and r["precision"] == "bf16"]
    plain = next(r for r in rows if not r["options"])
    tail = next(r for r in rows if r["options"])
    assert plain["passed"] is False and plain["why"].startswith("fails:")
    assert tail["options"]["f32_layers"].endswith("-70") and "layers in f32" in tail["note"]
    assert tail["ran"]["options"]["f32_layers"] == tail["options"]["f32_layers"]  # what the child actually ran
    assert tail["passed"] is True and tail["agreement"] >= 0.995 and tail["agreement"] > plain["agreement"]
    assert doc["chosen"]["key"] == tail["key"] and "which layers must stay in f32" in proc.stderr
    # zoo verify --tuned runs the recorded choice, option included, through the same comparison
    again = json.loads(run_zoo("verify", "deeplabv3p", "--tuned", "--json", check=True).stdout)
    assert again["passed"] is True and again["overall"]["agreement"] == tail["agreement"]
    evaluated = json.loads(run_zoo("eval", "deeplabv3p", "--data", str(data), "--json", check=True).stdout)
    ran = evaluated["backends"]["openvino/bf16"]
    assert ran["options"]["f32_layers"] == tail["options"]["f32_layers"] and evaluated["config"]["tuned"] is not None
    assert tail["miou"] is not None and round(ran["miou"] * 100, 4) == tail["miou"]
