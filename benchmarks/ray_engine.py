"""zoo run's Ray engine vs its local pipeline on one machine: images/s and the overhead per image (run by hand).

    python benchmarks/ray_engine.py                    # 200 images, bisenet at 512x1024, prints a JSON report
    python benchmarks/ray_engine.py --home DIR         # reuse (or keep) the scratch ZOO_HOME with the exported model
    python benchmarks/ray_engine.py --images 50 --size 256x512

Local: ``zoo.segment.segment_files`` with one 2-thread session (what ``zoo run --threads 2`` runs). Ray:
``zoo.distributed.run`` on a local Ray started here with ``num_cpus=2`` — 2 worker actors x 1 thread, batches of 8,
the model shipped through the object store — what ``zoo run --engine ray --workers 2 --threads-per-worker 1`` runs.
Both write every output file. Passes alternate local, ray, ray, local; each waits for a quiet machine first. The Ray
time includes starting the actors and their sessions (Ray Data starts them per run); the time to the first result is
reported apart. Target: ray ÷ local ≥ 0.85.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

TARGET = 0.85


def setup(model: str) -> None:
    from zoo import cache
    from zoo.convert import convert
    from zoo.export import export_model

    if "onnx" in cache.cached_formats(model):
        common.log(f"setup: reusing {model} in the scratch ZOO_HOME")
        return
    common.log(f"setup: export {model} with seeded random weights, convert to ONNX")
    export_model(model, weights="random", seed=0, legacy=True)
    convert(model, force=True)


def make_images(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    import cv2

    from zoo.synthetic import street_scene

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"frame_{i:03d}.jpg"
        if not path.exists():
            cv2.imwrite(str(path), street_scene(size[0], size[1], seed=i)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def local_pass(model: str, paths: list[Path], out: Path, threads: int) -> dict[str, float]:
    from zoo import runtime, segment

    shutil.rmtree(out, ignore_errors=True)
    loaded = runtime.load(model, threads=threads)
    list(segment.segment_files(loaded, paths[:2], out / "warm"))  # first-run setup of the session, as ray's actors
    started = time.perf_counter()
    results = list(segment.segment_files(loaded, paths, out))
    seconds = time.perf_counter() - started
    assert not [r for r in results if r.error], "local pass failed"
    return {"seconds": seconds, "images": len(results)}


def ray_pass(model: str, folder: Path, out: Path, workers: int, threads: int, batch: int) -> dict[str, float]:
    from zoo import distributed

    shutil.rmtree(out, ignore_errors=True)
    first: list[float] = []
    started = time.perf_counter()
    outcome = distributed.run(model, [str(folder)], out, workers=workers, batch_size=batch,
                              threads_per_worker=threads, resume=False,
                              on_result=lambda r: first or first.append(time.perf_counter()))  # fmt: skip
    seconds = time.perf_counter() - started  # plan + model hash/ship + actors + processing
    assert not outcome.failures, outcome.failures[:1]
    return {"seconds": seconds, "images": len(outcome.results), "first_result_s": first[0] - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="scratch ZOO_HOME to reuse (default: a new temp folder)")
    parser.add_argument("--model", default="bisenet")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", default="512x1024", help="HxW")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    home = args.home or Path(tempfile.mkdtemp(prefix="zoo-bench-ray-"))
    os.environ["ZOO_HOME"] = str(home)  # a benchmark script, not zoo: it sets up its own scratch home
    setup(args.model)
    work = home / "ray-bench"
    paths = make_images(work / "in", args.images, size)  # type: ignore[arg-type]

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        passes: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
        for engine in ("local", "ray", "ray", "local"):
            waited = common.wait_quiet()
            common.log(f"{engine} pass ({len(paths)} images) after waiting {waited:.0f} s for a quiet machine")
            with common.Interference() as seen:  # Ray's worker processes count as "others": meaningful for local only
                if engine == "local":
                    done = local_pass(args.model, paths, work / "out-local", threads=2)
                else:
                    done = ray_pass(args.model, work / "in", work / "out-ray", workers=2, threads=1,
                                    batch=args.batch_size)  # fmt: skip
            done["waited_s"] = waited
            if engine == "local":
                done["interference"] = seen.share
            passes[engine].append(done)
            common.log(f"  {done['seconds']:.1f} s, {done['images'] / done['seconds']:.2f} images/s")
    finally:
        ray.shutdown()
    local_s = statistics.mean(p["seconds"] for p in passes["local"])
    ray_s = statistics.mean(p["seconds"] for p in passes["ray"])
    n = len(paths)
    report = {
        "model": args.model, "images": n, "size": list(size), "batch_size": args.batch_size,
        "local": {"threads": 2, "passes": passes["local"], "images_per_s": n / local_s},
        "ray": {"workers": 2, "threads_per_worker": 1, "passes": passes["ray"], "images_per_s": n / ray_s,
                "first_result_s": statistics.mean(p["first_result_s"] for p in passes["ray"])},
        "ratio": local_s / ray_s,
        "overhead_ms_per_image": (ray_s - local_s) / n * 1000.0,
        "target": TARGET, "pass": local_s / ray_s >= TARGET,
    }  # fmt: skip
    print(json.dumps(report, indent=1))
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
