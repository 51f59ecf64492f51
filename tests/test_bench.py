"""zoo bench: the --json shape and sanity of its numbers on the tiny unet model. No assertion is about speed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run_zoo
from zoo.measure.bench import BackendStats, BenchResult

STAT_KEYS = {
    "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "throughput_ips", "preprocess_ms", "inference_ms",
    "postprocess_ms", "load_ms", "peak_rss_mb", "providers", "threads", "runs", "warmup", "config",
}  # fmt: skip


def _bench_json(*args: str) -> dict:
    proc = run_zoo("bench", "unet-tiny", "--size", "32x48", "--warmup", "1", "--runs", "5", *args, "--json",
                   check=True, timeout=120)  # fmt: skip
    return json.loads(proc.stdout)  # the whole of stdout is one JSON object


def _check_stats(stats: dict, backend: str, threads: int) -> None:
    assert STAT_KEYS <= stats.keys()
    assert stats["backend"] == backend
    assert 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
    assert stats["mean_ms"] > 0 and stats["throughput_ips"] > 0
    assert min(stats["preprocess_ms"], stats["inference_ms"], stats["postprocess_ms"]) >= 0
    assert stats["inference_ms"] > 0
    assert stats["peak_rss_mb"] >= stats["rss_after_load_mb"] > 0
    assert stats["providers"] and all(isinstance(p, str) and p for p in stats["providers"])
    assert stats["threads"] == threads
    assert (stats["runs"], stats["warmup"]) == (5, 1)


def test_bench_default_backends_json(models, zoo_home):
    from zoo.registry import backends

    default, reference = backends.default_backend().name, backends.reference_backend().name
    models.install("unet-tiny")
    doc = _bench_json("--threads", "1")
    assert doc["model"] == "unet-tiny"
    assert doc["size"] == [32, 48]
    assert doc["threads"] == 1
    # unnamed, bench runs the default backend and the reference one, as their specs say; rows name what ran
    rows = doc["backends"]
    assert list(rows) == [f"{default}/fp32", f"{reference}/fp32"]
    for key, stats in rows.items():
        _check_stats(stats, key.split("/")[0], 1)
        assert stats["device"] == "cpu" and stats["precision"] == "fp32"
    onnx = rows["onnx/fp32"]
    assert "CPUExecutionProvider" in onnx["providers"]
    assert onnx["config"]["intra_op_num_threads"] == 1
    assert onnx["config"]["allow_spinning"] == 0  # idle ORT workers leave the CPU to zoo run's I/O
    assert onnx["config"]["enable_mem_pattern"] is False  # one peak RSS per run (BENCHMARKS.md §11)
    assert doc["ratio"]["of"] == f"{default}/fp32" and doc["ratio"]["over"] == f"{reference}/fp32"
    assert all(doc["ratio"][k] > 0 for k in ("p50", "inference", "throughput", "peak_rss"))
    # speed-up and label agreement are against the reference's float32 row; the float32 ONNX model labels the image
    # as Paddle does (the arithmetic itself: test_speedup_and_agreement_against_the_reference_row)
    assert doc["reference"] == f"{reference}/fp32" and rows[f"{reference}/fp32"]["agreement"] == 1.0
    assert onnx["agreement"] >= 0.999 and onnx["speedup"] > 0
    # the ONNX model did not exist: bench converted it into the cache
    assert onnx["source"].startswith(str(zoo_home))
    assert list((zoo_home / "cache" / "onnx").glob("*/model.onnx"))


def _stats(backend: str, precision: str, p50: float) -> BackendStats:
    return BackendStats(backend=backend, source="-", providers=["x"], threads=1, config={}, runs=1, warmup=0,
                        p50_ms=p50, p90_ms=p50, p99_ms=p50, mean_ms=p50, min_ms=p50, throughput_ips=1000 / p50,
                        preprocess_ms=0.0, inference_ms=p50, postprocess_ms=0.0, inference_p90_ms=p50, load_ms=1.0,
                        rss_after_load_mb=10.0, peak_rss_mb=20.0, precision=precision)  # fmt: skip


def test_speedup_and_agreement_against_the_reference_row():
    """Numbers chosen so the answers are known: the reference takes 30 ms, the others 12 and 60 ms; 25 of 100 label
    pixels of one row differ from the reference's."""
    result = BenchResult("m", (10, 10), 1, 0, 1, pair=("fast", "ref"))
    result.backends.update({"fast/fp32": _stats("fast", "fp32", 12.0), "ref/fp32": _stats("ref", "fp32", 30.0),
                            "fast/int8": _stats("fast", "int8", 60.0)})  # fmt: skip
    want = np.zeros((10, 10), np.uint8)
    off = want.copy()
    off[:5, :5] = 1
    done = result.compare({"fast/fp32": want, "ref/fp32": want, "fast/int8": off}, reference="ref")
    assert done.reference == "ref/fp32"
    assert [done.backends[k].speedup for k in ("fast/fp32", "ref/fp32", "fast/int8")] == [2.5, 1.0, 0.5]
    assert [done.backends[k].agreement for k in ("fast/fp32", "ref/fp32", "fast/int8")] == [1.0, 1.0, 0.75]
    assert done.ratio() == {"of": "fast/fp32", "over": "ref/fp32", "p50": 0.4, "inference": 0.4, "throughput": 2.5,
                            "peak_rss": 1.0}  # fmt: skip
    # no float32 row of the reference backend: the first float32 row is the reference
    alone = BenchResult("m", (10, 10), 1, 0, 1, pair=("fast", "ref"))
    alone.backends.update({"fast/int8": _stats("fast", "int8", 60.0), "fast/fp32": _stats("fast", "fp32", 12.0)})
    done = alone.compare({"fast/int8": off, "fast/fp32": want}, reference="ref")
    assert done.reference == "fast/fp32" and done.backends["fast/int8"].speedup == 0.2 and done.ratio() is None


def test_bench_one_backend_has_no_ratio(models):
    models.install("unet-tiny")
    doc = _bench_json("--backend", "onnx", "--threads", "2")
    assert list(doc["backends"]) == ["onnx/fp32"]
    assert doc["ratio"] is None
    _check_stats(doc["backends"]["onnx/fp32"], "onnx", 2)


def test_bench_table(models):
    """The table's numbers hang together. With 2 runs the median is the mean, so P50 = PRE + INFER + POST (the stage
    medians) and IMG/S = 1000 / P50, up to the table's rounding."""
    models.install("unet-tiny")
    proc = run_zoo("bench", "unet-tiny", "--backend", "paddle", "--size", "32x48", "--warmup", "0", "--runs", "2",
                   "--threads", "1", check=True, timeout=120)  # fmt: skip
    assert "bench unet-tiny: paddle" in proc.stderr  # progress goes to stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == ("unet-tiny at 32x48 (HxW), 1 threads, 2 runs after 0 warm-up "
                        "(latency = preprocess + inference + postprocess)")  # fmt: skip
    header = lines[1].split("  ")
    header = [h.strip() for h in header if h.strip()]
    assert header == ["BACKEND", "PRECISION", "P50 MS", "P90 MS", "P99 MS", "IMG/S", "PRE MS", "INFER MS", "POST MS", "PEAK RSS",
                      "THREADS", "PROVIDERS"]  # fmt: skip
    cells = lines[2].split()
    assert cells[0] == "paddle" and cells[1] == "fp32" and cells[-1] == "paddle-cpu-onednn" and cells[-2] == "1" and cells[-3] == "MB"
    p50, p90, p99, ips, pre, infer, post, rss = (float(c) for c in cells[2:10])
    assert 0 < p50 <= p90 <= p99 and infer > 0 and rss > 0
    assert p50 == pytest.approx(pre + infer + post, abs=0.16)  # three values rounded to 0.1 each
    assert ips == pytest.approx(1000 / p50, rel=0.05 / p50 + 0.006)  # P50 rounded to 0.1, IMG/S to 0.01


def test_bench_errors(models):
    proc = run_zoo("bench", "unet-tiny", "--size", "32x48")
    assert proc.returncode == 1 and "zoo pull unet-tiny" in proc.stderr  # nothing cached
    proc = run_zoo("bench", "no-such-model")
    assert proc.returncode == 1 and "no-such-model" in proc.stderr
    proc = run_zoo("bench", "unet-tiny", "--size", "32by48")
    assert proc.returncode == 2 and "--size" in proc.stderr


