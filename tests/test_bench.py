"""zoo bench: the --json shape and sanity of its numbers on the tiny unet model. No assertion is about speed."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_zoo

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


def test_bench_both_backends_json(models, zoo_home):
    models.install("unet-tiny")
    doc = _bench_json("--threads", "1")
    assert doc["model"] == "unet-tiny"
    assert doc["size"] == [32, 48]
    assert doc["threads"] == 1
    assert list(doc["backends"]) == ["onnx", "paddle"]
    _check_stats(doc["backends"]["onnx"], "onnx", 1)
    _check_stats(doc["backends"]["paddle"], "paddle", 1)
    assert "CPUExecutionProvider" in doc["backends"]["onnx"]["providers"]
    assert doc["backends"]["onnx"]["config"]["intra_op_num_threads"] == 1
    assert doc["backends"]["onnx"]["config"]["allow_spinning"] == 0  # idle ORT workers leave the CPU to zoo run's I/O
    assert doc["backends"]["onnx"]["config"]["enable_mem_pattern"] is False  # one peak RSS per run (BENCHMARKS.md §11)
    assert set(doc["ratio"]) == {"p50", "inference", "throughput", "peak_rss"}
    # speed-up and label agreement are against float32 Paddle; the float32 ONNX model labels the image as Paddle does
    assert doc["reference"] == "paddle" and doc["backends"]["paddle"]["speedup"] == 1.0
    assert doc["backends"]["paddle"]["agreement"] == 1.0 and doc["backends"]["onnx"]["agreement"] >= 0.999
    speedup = doc["backends"]["paddle"]["p50_ms"] / doc["backends"]["onnx"]["p50_ms"]
    assert doc["backends"]["onnx"]["speedup"] == pytest.approx(speedup, rel=1e-2)
    assert all(v > 0 for v in doc["ratio"].values())
    # the ONNX model did not exist: bench converted it into the cache
    assert doc["backends"]["onnx"]["source"].startswith(str(zoo_home))
    assert list((zoo_home / "cache" / "onnx").glob("*/model.onnx"))


def test_bench_one_backend_has_no_ratio(models):
    models.install("unet-tiny")
    doc = _bench_json("--backend", "onnx", "--threads", "2")
    assert list(doc["backends"]) == ["onnx"]
    assert doc["ratio"] is None
    _check_stats(doc["backends"]["onnx"], "onnx", 2)


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


