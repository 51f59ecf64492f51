"""The Ray engine (zoo/engines/distributed.py, zoo run --engine ray) on a real local Ray with 2 CPUs, one per module.

The model is unet-tiny (seeded random weights, exported and converted by tests/models.py); the expected outputs come
from the local engine (zoo.engines.segment.segment_files) and, for eval, from a plain loop over the same pairs with a small
self-contained np.bincount accumulator. Label maps, colour masks and overlays are compared byte for byte; JSON
summaries field by field except timings and the output folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_zoo
from tests.models import ModelStore, model_store, models  # noqa: F401 - fixtures
from tests.test_images import street, write

NAME = "unet-tiny"
N_GOOD = 23  # + 1 bad file = 24 inputs


@pytest.fixture(scope="module")
def cluster():
    """One local Ray for the module's tests: 2 CPUs, no dashboard, a small object store; shut down at the end."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 << 20, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def unet(models: ModelStore) -> Path:
    return models.install_converted(NAME)


def images_folder(root: Path, n: int = N_GOOD, bad: bool = True) -> Path:
    """n small street pictures of varied sizes (PNG and JPEG) and, with ``bad``, one text file named .png."""
    folder = root / "in"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i in range(n):
        h, w = 40 + 8 * (i % 4), 64 + 8 * (i % 3)
        img = street(h, w)
        img[::7, ::5] = rng.integers(0, 255, img[::7, ::5].shape, dtype=np.uint8)  # no two images alike
        write(folder / f"img{i:02d}.{'jpg' if i % 5 == 0 else 'png'}", img)
    if bad:
        (folder / "broken.png").write_text("not an image\n")
    return folder


def local_outputs(folder_or_paths, out: Path):
    """The local engine's results: 1 thread, as each Ray worker runs."""
    from zoo import images
    from zoo.engines import segment
    from zoo.runners import runtime

    paths = images.expand_inputs(folder_or_paths if isinstance(folder_or_paths, list) else [folder_or_paths])
    model = runtime.load(NAME, threads=1)
    return list(segment.segment_files(model, paths, out))


def comparable(summary: dict, out: Path) -> dict:
    """A JSON summary without its timings, with output paths relative to their folder."""
    s = dict(summary)
    s.pop("timings_ms")
    s["outputs"] = {k: str(Path(v).relative_to(out)) for k, v in s["outputs"].items()}
    return s


def assert_same_outputs(local_out: Path, ray_out: Path) -> int:
    names = sorted(p.name for p in local_out.iterdir())
    assert names == sorted(p.name for p in ray_out.iterdir())
    for name in names:
        a, b = local_out / name, ray_out / name
        if name.endswith(".json"):
            want, got = json.loads(a.read_text()), json.loads(b.read_text())
            assert comparable(want, local_out) == comparable(got, ray_out), name
        else:
            assert a.read_bytes() == b.read_bytes(), name
    return len(names)


@pytest.mark.slow
@pytest.mark.ray
def test_ray_outputs_equal_the_local_engine_file_for_file_and_a_bad_image_is_counted(cluster, unet, tmp_path: Path):
    from zoo.engines import distributed

    folder = images_folder(tmp_path)
    local = local_outputs(folder, tmp_path / "local")
    outcome = distributed.run(NAME, [str(folder)], tmp_path / "ray", workers=2, batch_size=4, threads_per_worker=1)

    assert outcome.total == N_GOOD + 1 and not outcome.skipped
    assert [str(r.path) for r in outcome.results] == [str(r.path) for r in local]  # input order
    assert [r.path.name for r in outcome.failures] == ["broken.png"]
    assert outcome.failures[0].error == next(r.error for r in local if r.error)  # the same message as the local engine
    assert assert_same_outputs(tmp_path / "local", tmp_path / "ray") == 4 * N_GOOD
    assert {r.summary["threads"] for r in outcome.results if r.summary} == {1}


@pytest.mark.slow
@pytest.mark.ray
def test_a_resumed_run_does_only_the_unfinished_images(cluster, unet, tmp_path: Path):
    from zoo.engines import distributed

    folder = images_folder(tmp_path, n=12)
    out = tmp_path / "out"
    first = distributed.run(NAME, [str(folder)], out, workers=2, batch_size=3)
    assert len(first.results) == 13 and len(first.failures) == 1
    # a killed job: one image never written, one whose JSON was cut short, one missing its overlay
    (out / "img03.json").unlink()
    (out / "img05.json").write_text((out / "img05.json").read_text()[:40])
    (out / "img07.overlay.jpg").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    again = distributed.run(NAME, [str(folder)], out, workers=2, batch_size=3)
    redone = sorted(r.path.name for r in again.results)
    assert redone == ["broken.png", "img03.png", "img05.jpg", "img07.png"]  # the bad file has no outputs to resume
    assert len(again.skipped) == 9 and again.total == 13
    unchanged = [n for n, t in before.items() if not n.startswith(("img03", "img05", "img07"))]
    assert all((out / n).stat().st_mtime_ns == before[n] for n in unchanged)
    assert json.loads((out / "img05.json").read_text())["input"] == str(folder / "img05.jpg")
    assert (out / "img07.overlay.jpg").is_file()

    everything = distributed.run(NAME, [str(folder)], out, workers=2, batch_size=3, resume=False)
    assert len(everything.results) == 13 and not everything.skipped


@pytest.mark.slow
@pytest.mark.ray
def test_a_tampered_model_is_refused_on_the_worker(cluster, unet: Path, tmp_path: Path):
    import ray

    from zoo.engines import distributed, shipping
    from zoo.store import cache
    from zoo.errors import IntegrityError

    folder = images_folder(tmp_path, n=3, bad=False)
    good = distributed.resolve_model(NAME, ship="object")  # verified on the driver
    data = bytearray(unet.read_bytes())
    data[len(data) // 2] ^= 0xFF

    # bytes that differ from what the driver verified, as if changed in transit
    forged = dataclasses.replace(good, blob=ray.put(bytes(data)))
    with pytest.raises(IntegrityError, match="refused"):
        distributed.run(forged, [str(folder)], tmp_path / "a", workers=1, batch_size=2)
    assert not list((tmp_path / "a").glob("*.json"))

    # a shared model file changed after the driver checked it
    shared = distributed.resolve_model(NAME, ship="path")
    unet.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="refused"):
        distributed.run(shared, [str(folder)], tmp_path / "b", workers=1, batch_size=2)
    assert not list((tmp_path / "b").glob("*.json"))

    ok = distributed.run(good, [str(folder)], tmp_path / "c", workers=1, batch_size=2)  # the verified bytes still run
    assert len(ok.results) == 3 and not ok.failures

    # a damaged node-local copy of shipped bytes is replaced from the verified bytes, not trusted
    # where workers on this node keep it (rewritten here: b"" does not hash to sha256)
    copy = shipping.node_copy(b"", good.sha256, Path(good.source).suffix)
    copy.write_bytes(bytes(data))
    healed = distributed.run(good, [str(folder)], tmp_path / "d", workers=1, batch_size=2)
    assert len(healed.results) == 3 and not healed.failures
    assert cache.sha256_file(copy) == good.sha256


@pytest.mark.slow
@pytest.mark.ray
def test_segment_returns_a_lazy_dataset_of_the_unfinished_images(cluster, unet, tmp_path: Path):
    from zoo.engines import distributed

    folder = images_folder(tmp_path, n=4, bad=False)
    out = tmp_path / "out"
    ds = distributed.segment(NAME, [str(folder)], out, workers=1, batch_size=2)
    assert not out.exists() or not any(out.iterdir())  # nothing runs until the dataset is consumed
    rows = sorted(ds.take_all(), key=lambda row: row["index"])
    assert [Path(row["input"]).name for row in rows] == [p.name for p in sorted(folder.iterdir())]
    assert all(not row["error"] and json.loads(row["summary"])["num_classes"] == 4 for row in rows)
    assert len(list(out.glob("*.labels.png"))) == 4
    assert distributed.segment(NAME, [str(folder)], out, workers=1).count() == 0  # resumed: nothing left to do


@pytest.mark.slow
@pytest.mark.ray
def test_fsspec_memory_and_file_uris_give_the_local_outputs(cluster, unet, tmp_path: Path):
    fsspec = pytest.importorskip("fsspec")
    from zoo.engines import distributed

    folder = images_folder(tmp_path, n=6)
    fs = fsspec.filesystem("memory")
    for path in sorted(folder.iterdir()):
        fs.pipe(f"memory://zoo-test/{path.name}", path.read_bytes())
    try:
        in_memory = distributed.run(NAME, ["memory://zoo-test"], tmp_path / "mem", workers=2, batch_size=2)
    finally:
        fs.rm("/zoo-test", recursive=True)
    on_disk = distributed.run(NAME, [f"file://{folder}/img0*.png"], tmp_path / "file", workers=2, batch_size=2)
    local_outputs(folder, tmp_path / "local")

    assert in_memory.total == 7 and [r.path for r in in_memory.failures] == ["memory:///zoo-test/broken.png"]
    assert [r.summary["input"] for r in in_memory.results[1:]] == [f"memory:///zoo-test/{p.name}"
                                                                   for p in sorted(folder.glob("img*"))]  # fmt: skip
    assert on_disk.total == 4 and not on_disk.failures  # img01..img04.png (img00 and img05 are JPEGs)
    for out in (tmp_path / "mem", tmp_path / "file"):
        labels = sorted(p.name for p in out.glob("*.labels.png"))
        assert labels
        for name in labels:
            assert (out / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), (out, name)


@pytest.mark.slow
@pytest.mark.ray
def test_eval_sums_of_confusion_areas_equal_the_local_loop_exactly(cluster, unet, tmp_path: Path):
    import cv2

    from zoo import images
    from zoo.engines import distributed
    from zoo.runners import runtime

    folder = images_folder(tmp_path, n=10, bad=False)
    rng = np.random.default_rng(3)
    pairs = []
    for path in sorted(folder.iterdir()):
        h, w = images.read_image(path).shape[:2]
        label = rng.integers(0, 4, (h, w)).astype(np.uint8)
        label[: h // 4] = 255  # ignored
        cv2.imwrite(str(path.with_suffix(".label.png")), label)
        pairs.append((str(path), str(path.with_suffix(".label.png"))))
    classes = 4

    def areas(pred: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = label.reshape(-1) != 255
        p, lab = pred.reshape(-1)[keep].astype(np.int64), label.reshape(-1)[keep].astype(np.int64)
        return (np.bincount(p[p == lab], minlength=classes), np.bincount(p, minlength=classes),
                np.bincount(lab, minlength=classes))  # fmt: skip

    model = runtime.load(NAME, threads=1)
    local = [np.zeros(classes, np.int64) for _ in range(3)]
    for image, label in pairs:
        one = areas(model.predict(images.read_image(image)), cv2.imread(label, cv2.IMREAD_UNCHANGED))
        local = [a + b for a, b in zip(local, one)]
    pairs.append((str(tmp_path / "missing.png"), pairs[0][1]))

    total, n, errors = distributed.score(NAME, pairs, areas, workers=2, batch_size=3)
    assert n == 10 and len(errors) == 1 and "missing.png" in errors[0]
    assert local[0].sum() > 0  # the random model does predict some labelled pixels right
    for got, want in zip(total, local):
        np.testing.assert_array_equal(got, want)  # integer sums: exact


@pytest.mark.slow
@pytest.mark.ray
def test_cli_engine_ray_joins_a_cluster_and_counts_failures(cluster, unet, tmp_path: Path):
    folder = images_folder(tmp_path, n=5)
    out = tmp_path / "out"
    proc = run_zoo("run", NAME, str(folder), "--out", str(out), "--engine", "ray", "--address", cluster,
                   "--workers", "2", "--batch-size", "2", "--json")  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "1 of 6 inputs failed" in proc.stderr and "images/s" in proc.stderr
    summaries = json.loads(proc.stdout)
    assert len(summaries) == 5 and all(Path(s["outputs"]["labels"]).is_file() for s in summaries)

    again = run_zoo("run", NAME, str(folder), "--out", str(out), "--engine", "ray", "--address", cluster)
    assert again.returncode == 1, again.stderr
    assert "5 image(s) already done" in again.stderr and "1 of 6 inputs failed" in again.stderr


@pytest.mark.slow
@pytest.mark.ray
def test_cli_palette_and_no_legend_reach_the_workers(cluster, unet, tmp_path: Path):
    folder = images_folder(tmp_path, n=3, bad=False)
    flags = ("--palette", "paddleseg", "--no-legend")
    run_zoo("run", NAME, str(folder), "--out", str(tmp_path / "local"), *flags, "--threads", "1", check=True)
    run_zoo("run", NAME, str(folder), "--out", str(tmp_path / "ray"), *flags, "--engine", "ray", "--address",
            cluster, "--workers", "1", "--threads-per-worker", "1", check=True)  # fmt: skip
    assert assert_same_outputs(tmp_path / "local", tmp_path / "ray") == 4 * 3
    overlay = np.frombuffer((tmp_path / "ray" / "img00.overlay.jpg").read_bytes(), np.uint8)
    import cv2

    assert cv2.imdecode(overlay, cv2.IMREAD_COLOR).shape[:2] == (40, 64)  # no legend strip
    # PaddleSeg's pseudo-colours, not the plugin's palette (background would be black)
    color = cv2.imread(str(tmp_path / "ray" / "img00.color.png"), cv2.IMREAD_COLOR)[..., ::-1]
    labels = cv2.imread(str(tmp_path / "ray" / "img00.labels.png"), cv2.IMREAD_UNCHANGED)
    pseudo = np.array([[128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]], np.uint8)  # get_color_map_list[1:5]
    np.testing.assert_array_equal(color, pseudo[labels])


def test_engine_ray_without_ray_is_one_line_with_the_install_command(tmp_path: Path):
    folder = images_folder(tmp_path, n=1, bad=False)
    hide_ray = "import sys; sys.modules['ray'] = None; from zoo.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", hide_ray, "run", NAME, str(folder), "--engine", "ray"],
                          capture_output=True, text=True, env=dict(os.environ), timeout=120)  # fmt: skip
    assert proc.returncode == 1
    want = "zoo: error: --engine ray needs Ray, which is not installed; run: pip install 'zoo[ray]'"
    assert proc.stderr.strip() == want
