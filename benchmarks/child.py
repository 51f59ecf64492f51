"""Measurements that run in their own process, started by benchmarks/run.py: ``child.py MODE ARGS... RESULT.json``.

Each mode writes one JSON object to RESULT.json (stdout is left to the native libraries' chatter). Modes:

    runner-vs-bare NAME H W THREADS WARMUP RUNS    zoo's runner.run(x) vs a bare InferenceSession.run, interleaved
    folder NAME DIR OUT THREADS WARMUP             zoo run's folder pipeline vs back-to-back bare session.run
    profile ONNX H W THREADS LEVEL                 ORT profile of one run: time per op type, FLOPs per node
    peak-conv THREADS RUNS                         GFLOP/s of single large Conv models (the machine's practical peak)
    fetch URL SHA256 SIZE                          zoo.fetch.fetch of one artifact into ZOO_HOME (force), timed
    serve BODY PORTFILE                            a loopback FaultServer (tests/http_server.py) counting bytes sent
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FLOP_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "FusedMatMul", "FusedGemm")


def _ort_options(threads: int, level: str = "all") -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    return options


def _bare_session(path: str, threads: int) -> Any:
    """What a user would write: an InferenceSession with the thread count set, everything else default."""
    import onnxruntime as ort

    return ort.InferenceSession(path, _ort_options(threads), providers=["CPUExecutionProvider"])


def _bare_tensor(rgb: Any) -> Any:
    """PaddleSeg's normalisation written out plainly: (x / 255 - 0.5) / 0.5, HWC → NCHW."""
    import numpy as np

    x = (rgb.astype(np.float32) / 255.0 - 0.5) / 0.5
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def runner_vs_bare(name: str, h: str, w: str, threads: str, warmup: str, runs: str) -> dict[str, Any]:
    import numpy as np

    from zoo import bench, runtime

    threads_n, pause = int(threads), 0.1  # the pause lets the other session's spinning workers go idle
    model = runtime.load(name, backend="onnx", threads=threads_n)
    x = model.prepare(bench.synthetic_image((int(h), int(w))))
    session = _bare_session(str(model.source), threads_n)
    feed_name = session.get_inputs()[0].name

    def zoo_run() -> Any:
        return model.runner.run(x)

    def bare_run() -> Any:
        return session.run(None, {feed_name: x})[0]

    for _ in range(int(warmup)):
        zoo_run(), bare_run()
    times: dict[str, list[float]] = {"zoo": [], "bare": []}
    outputs = {}
    for i in range(int(runs)):
        order = [("zoo", zoo_run), ("bare", bare_run)]
        for key, fn in order if i % 2 == 0 else order[::-1]:  # ABBA: neither side always goes first
            time.sleep(pause)
            started = time.perf_counter()
            outputs[key] = fn()
            times[key].append((time.perf_counter() - started) * 1000.0)
    return {
        "zoo_ms": times["zoo"], "bare_ms": times["bare"],
        "zoo_median_ms": float(np.median(times["zoo"])), "bare_median_ms": float(np.median(times["bare"])),
        "same_output": bool(np.array_equal(outputs["zoo"], outputs["bare"])),
        "providers": model.providers, "threads": model.runner.threads,
    }  # fmt: skip


def folder(name: str, directory: str, out: str, threads: str, warmup: str) -> dict[str, Any]:
    import cv2
    import numpy as np

    from zoo import images, runtime
    from zoo.cli.cmd_run import segment_files

    threads_n = int(threads)
    paths = images.expand_inputs([directory])
    model = runtime.load(name, backend="onnx", threads=threads_n)
    tensors = [_bare_tensor(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)) for p in paths]
    session = _bare_session(str(model.source), threads_n)
    feed_name = session.get_inputs()[0].name

    def bare() -> float:
        for x in tensors[: int(warmup)]:
            session.run(None, {feed_name: x})
        started = time.perf_counter()
        for x in tensors:
            session.run(None, {feed_name: x})
        return time.perf_counter() - started

    bare_before = bare()
    for _ in range(int(warmup)):
        model.infer(tensors[0])
    time.sleep(0.2)
    started = time.perf_counter()
    results = list(segment_files(model, paths, Path(out)))
    zoo_seconds = time.perf_counter() - started
    time.sleep(0.2)
    bare_after = bare()
    failed = [r.error for r in results if r.error]
    stages = [r.summary["timings_ms"] for r in results if r.summary]
    keys = stages[0].keys() if stages else []
    return {
        "images": len(paths), "failed": failed, "size": list(tensors[0].shape[2:]),
        "zoo_seconds": zoo_seconds, "bare_seconds": [bare_before, bare_after],
        "stage_median_ms": {k: float(np.median([s[k] for s in stages])) for k in keys},
    }  # fmt: skip


def profile(onnx_path: str, h: str, w: str, threads: str, level: str) -> dict[str, Any]:
    """One warm-up and one profiled run; time per op type of the profiled run, and each FLOP-bearing node's shapes."""
    import numpy as np
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = _ort_options(int(threads), level)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: np.random.default_rng(0).random((1, 3, int(h), int(w)), np.float32)}
        session.run(None, feed)
        session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = [e for e in events if e.get("name") == "model_run"]
    last = runs[-1]
    start, end = last["ts"], last["ts"] + last["dur"]
    by_op: dict[str, float] = {}
    nodes = []
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or not start <= e["ts"] <= end:
            continue
        op = e["args"].get("op_name", "?")
        by_op[op] = by_op.get(op, 0.0) + e["dur"] / 1000.0
        if op in FLOP_OPS:
            shapes_in = [next(iter(s.values())) for s in e["args"].get("input_type_shape", [])]
            shapes_out = [next(iter(s.values())) for s in e["args"].get("output_type_shape", [])]
            nodes.append({"op": op, "inputs": shapes_in, "outputs": shapes_out, "ms": e["dur"] / 1000.0})
    return {"run_ms": last["dur"] / 1000.0, "op_ms": by_op, "flop_nodes": nodes}


def peak_conv(threads: str, runs: str) -> dict[str, Any]:
    """Time a few large single-Conv models; the best GFLOP/s is the practical peak zoo's models are compared to."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    import onnxruntime as ort

    shapes = [  # (Cin, Cout, k, H, W): big enough that the kernel, not the overhead, dominates
        (256, 256, 3, 128, 256),
        (512, 512, 3, 64, 128),
        (1024, 1024, 1, 64, 128),
    ]
    rng = np.random.default_rng(0)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for cin, cout, k, h, w in shapes:
            weight = helper.make_tensor("W", TensorProto.FLOAT, [cout, cin, k, k],
                                        rng.standard_normal((cout, cin, k, k), np.float32).tobytes(), raw=True)  # fmt: skip
            node = helper.make_node("Conv", ["x", "W"], ["y"], pads=[k // 2] * 4, kernel_shape=[k, k])
            graph = helper.make_graph([node], "big_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])],
                                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, h, w])], [weight])  # fmt: skip
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
            path = Path(tmp) / "conv.onnx"
            onnx.save(model, str(path))
            options = _ort_options(int(threads))
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            x = rng.standard_normal((1, cin, h, w), np.float32)
            for _ in range(2):
                session.run(None, {"x": x})
            times = []
            for _ in range(int(runs)):
                started = time.perf_counter()
                session.run(None, {"x": x})
                times.append(time.perf_counter() - started)
            flops = 2.0 * cout * h * w * cin * k * k
            best = float(np.median(times))
            results.append({"shape": f"{cin}->{cout} {k}x{k} at {h}x{w}", "gflop": flops / 1e9,
                            "median_ms": best * 1000, "gflops_per_s": flops / best / 1e9})  # fmt: skip
    return {"convs": results, "peak_gflops_per_s": max(r["gflops_per_s"] for r in results)}


def fetch(url: str, sha256: str, size: str) -> dict[str, Any]:
    from zoo import fetch as fetch_mod
    from zoo.registry import Artifact

    artifact = Artifact("onnx", (url,), sha256, int(size))
    started = time.perf_counter()
    got = fetch_mod.fetch(artifact, pin_id="bench/onnx", force=True, progress=False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "size": got.size, "sha256": got.sha256}


def serve(body: str, portfile: str) -> None:
    """Serve BODY at /big.onnx, and at /cut.onnx closing the first response after 40% (for the resume test)."""
    sys.path.insert(0, str(REPO))
    from tests import http_server

    class Counting(http_server._Handler):
        def _serve(self, head: bool) -> None:
            if self.path == "/_sent":
                data = json.dumps(self.server.sent).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.bytes_out = 0
            try:
                super()._serve(head)
            finally:
                self.server.sent.append({"path": self.path, "range": self.headers.get("Range"), "bytes": self.bytes_out})

        def _write(self, route: Any, data: bytes) -> None:
            super()._write(route, data)
            self.bytes_out += len(data)

    data = Path(body).read_bytes()
    server = http_server.FaultServer()
    server.RequestHandlerClass = Counting
    server.sent = []
    server.add("/big.onnx", data)
    server.add("/cut.onnx", data, close_early=True, times=1, cut=len(data) * 2 // 5)
    with server:
        Path(portfile).write_text(server.base)
        while True:  # until the parent terminates this process
            time.sleep(1)


MODES = {
    "runner-vs-bare": runner_vs_bare, "folder": folder, "profile": profile, "peak-conv": peak_conv, "fetch": fetch,
}  # fmt: skip

if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "serve":
        serve(*args)
    os.environ.setdefault("GLOG_minloglevel", "2")
    result = MODES[mode](*args[:-1])
    Path(args[-1]).write_text(json.dumps(result), encoding="utf-8")
