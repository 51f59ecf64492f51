"""Measurements that run in their own process, started by benchmarks/run.py: ``child.py MODE ARGS... RESULT.json``.

Each mode writes one JSON object to RESULT.json (stdout is left to the native libraries' chatter). Modes:

    runner-vs-bare NAME H W THREADS WARMUP RUNS    zoo's runner.run(x) vs a bare InferenceSession.run, interleaved
    folder NAME DIR OUT THREADS WARMUP             zoo run's folder pipeline vs back-to-back session.run (ABBA)
    profile ONNX H W THREADS LEVEL                 ORT profile of one run: time per op type, FLOPs per node
    peak-conv THREADS RUNS                         GFLOP/s of single large Conv models on ORT (the practical peak)
    paddle-conv THREADS RUNS                       the same convolutions on Paddle Inference (FLAGS_enable_pir_api=0)
    layer-compare CONFIGS.json THREADS RUNS        a model's convolution shapes one by one, on ORT and on Paddle
    fetch URL SHA256 SIZE [PROFILED]               zoo.net.fetch.fetch of one artifact into ZOO_HOME (force), timed
    fetch-plain URL DEST                           the same download in plain Python (http.client, 1 MiB reads)
    serve BODY PORTFILE                            a loopback FaultServer (tests/http_server.py) counting bytes sent
"""

from __future__ import annotations

import functools
import json
import os
import re
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

    from zoo.measure import bench
    from zoo.runners import runtime

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
    paired = [z / b for z, b in zip(times["zoo"], times["bare"], strict=True)]  # adjacent calls: drift cancels
    return {
        "zoo_ms": times["zoo"], "bare_ms": times["bare"], "paired_ratio": float(np.median(paired)),
        "zoo_median_ms": float(np.median(times["zoo"])), "bare_median_ms": float(np.median(times["bare"])),
        "same_output": bool(np.array_equal(outputs["zoo"], outputs["bare"])),
        "providers": model.providers, "threads": model.threads,
    }  # fmt: skip


def folder(name: str, directory: str, out: str, threads: str, warmup: str) -> dict[str, Any]:
    import cv2
    import numpy as np

    from zoo import images
    from zoo.runners import runtime
    from zoo.engines.segment import segment_files

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

    def pipeline() -> tuple[float, list[Any]]:
        for _ in range(int(warmup)):
            model.infer(tensors[0])
        time.sleep(0.2)
        started = time.perf_counter()
        done = list(segment_files(model, paths, Path(out)))
        return time.perf_counter() - started, done

    # bare, zoo, zoo, bare: a drift in the machine's speed hits both sides alike
    bare_first = bare()
    zoo_first, _ = pipeline()
    zoo_second, results = pipeline()
    time.sleep(0.2)
    bare_second = bare()
    failed = [r.error for r in results if r.error]
    stages = [r.summary["timings_ms"] for r in results if r.summary]
    keys = stages[0].keys() if stages else []
    return {
        "images": len(paths), "failed": failed, "size": list(tensors[0].shape[2:]),
        "zoo_seconds": [zoo_first, zoo_second], "bare_seconds": [bare_first, bare_second],
        "stage_median_ms": {k: float(np.median([s[k] for s in stages])) for k in keys},
        "pieces_ms": _output_pieces(model, paths[0]),
    }  # fmt: skip


def _output_pieces(model: Any, path: Path) -> dict[str, float]:
    """Each step of zoo run's postprocess and write stages, alone on one image (median of 5, ms): what costs what."""
    import cv2

    from zoo import images, postprocess

    rgb = images.read_image(path)
    output = model.infer(model.prepare(rgb))
    labels = model.to_labels(output, rgb.shape[:2])
    arch = model.architecture
    mask = arch.colorize(labels)
    overlay = postprocess.overlay(rgb, mask, arch.overlay_alpha)
    rle = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    steps = {
        "to_labels": lambda: model.to_labels(output, rgb.shape[:2]),
        "colorize": lambda: arch.colorize(labels),
        "overlay": lambda: postprocess.overlay(rgb, mask, arch.overlay_alpha),
        "class_shares": lambda: postprocess.class_shares(labels, model.labels),
        "labels.png": lambda: cv2.imencode(".png", labels, rle),
        "color.png": lambda: cv2.imencode(".png", mask[:, :, ::-1], rle),
        "overlay.jpg": lambda: cv2.imencode(".jpg", overlay[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90]),
        "decode (read)": lambda: images.decode(path),
        "preprocess": lambda: model.prepare(rgb),
    }
    return {name: _time(fn, 5) * 1000 for name, fn in steps.items()}


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
            nodes.append({"op": op, "inputs": shapes_in, "outputs": shapes_out, "ms": e["dur"] / 1000.0,
                          "nchwc": "_nchwc" in e["name"], "name": e["name"].removesuffix("_kernel_time")})  # fmt: skip
    return {"run_ms": last["dur"] / 1000.0, "op_ms": by_op, "flop_nodes": nodes}


PEAK_SHAPES = [  # (Cin, Cout, k, H, W): big enough that the kernel, not the overhead, dominates
    (256, 256, 3, 128, 256),
    (512, 512, 3, 64, 128),
    (2048, 512, 3, 64, 128),
    (1024, 1024, 1, 64, 128),
]


def _time(fn: Any, runs: int) -> float:
    """Median seconds of ``fn()`` after two untimed calls."""
    fn(), fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def _conv_result(cin: int, cout: int, k: int, h: int, w: int, seconds: float) -> dict[str, Any]:
    flops = 2.0 * cout * h * w * cin * k * k
    return {"shape": f"{cin}->{cout} {k}x{k} at {h}x{w}", "gflop": flops / 1e9, "median_ms": seconds * 1000,
            "gflops_per_s": flops / seconds / 1e9}  # fmt: skip


def peak_conv(threads: str, runs: str) -> dict[str, Any]:
    """Time a few large single-Conv models on ORT; the best GFLOP/s is the practical peak the models are held to."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for cin, cout, k, h, w in PEAK_SHAPES:
            weight = rng.standard_normal((cout, cin, k, k), np.float32)
            graph = helper.make_graph(
                [helper.make_node("Conv", ["x", "W"], ["y"], pads=[k // 2] * 4, kernel_shape=[k, k])], "big_conv",
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, h, w])],
                [helper.make_tensor("W", TensorProto.FLOAT, weight.shape, weight.tobytes(), raw=True)],
            )  # fmt: skip
            path = Path(tmp) / "conv.onnx"
            onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))
            options = _ort_options(int(threads))
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            feed = {"x": rng.standard_normal((1, cin, h, w), np.float32)}
            seconds = _time(lambda s=session, f=feed: s.run(None, f), int(runs))
            results.append(_conv_result(cin, cout, k, h, w, seconds))
    return {"convs": results, "peak_gflops_per_s": max(r["gflops_per_s"] for r in results)}


def _feed(predictor: Any, x: Any) -> None:
    """Copy the input in once: the timed ``predictor.run()`` then does only the convolution, as ORT's run does (ORT
    reads a numpy input in place), not the 8-64 MB copies in and out that a stand-alone layer would add."""
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)


def _paddle_conv_predictor(folder: Path, conv: Any, shape: tuple[int, ...], threads: int) -> Any:
    """A legacy one-convolution program, saved and loaded into a predictor configured as zoo configures Paddle."""
    import paddle
    from paddle import inference

    from zoo.runners import paddle_config

    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", list(shape), "float32")
        y = conv(x)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    prefix = str(folder / "conv")
    paddle.static.save_inference_model(prefix, [x], [y], exe, program=main)
    config = inference.Config(prefix + ".pdmodel", prefix + ".pdiparams")
    paddle_config.configure(config, Path(prefix + ".pdmodel"), threads=threads)
    config.disable_glog_info()
    return inference.create_predictor(config)


def paddle_conv(threads: str, runs: str) -> dict[str, Any]:
    """The same single convolutions on Paddle Inference (legacy program, configured as zoo configures it)."""
    import numpy as np
    import paddle

    paddle.enable_static()  # this child runs with FLAGS_enable_pir_api=0: a legacy model.pdmodel program
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for cin, cout, k, h, w in PEAK_SHAPES:
            conv = functools.partial(paddle.static.nn.conv2d, num_filters=cout, filter_size=k, padding=k // 2,
                                     bias_attr=False)  # fmt: skip
            predictor = _paddle_conv_predictor(Path(tmp), conv, (1, cin, h, w), int(threads))
            _feed(predictor, np.random.default_rng(0).standard_normal((1, cin, h, w), np.float32))
            results.append(_conv_result(cin, cout, k, h, w, _time(predictor.run, int(runs))))
    return {"convs": results, "best_gflops_per_s": max(r["gflops_per_s"] for r in results)}


def layer_compare(configs_json: str, threads: str, runs: str) -> dict[str, Any]:
    """Each convolution shape of a model as a one-Conv model, timed on ORT and on Paddle Inference (oneDNN).

    ``configs_json`` is a list of {cin, cout, k: [kh, kw], h, w, stride, dilation, pads: [t, l, b, r], group, count}.
    Runs with FLAGS_enable_pir_api=0 so that Paddle writes a legacy program, as zoo's fastest Paddle path uses.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort
    import paddle
    from onnx import TensorProto, helper

    paddle.enable_static()
    rng = np.random.default_rng(0)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in json.loads(Path(configs_json).read_text()):
            cin, cout, (kh, kw), h, w = c["cin"], c["cout"], c["k"], c["h"], c["w"]
            x = rng.standard_normal((1, cin, h, w), np.float32)
            weight = rng.standard_normal((cout, cin // c["group"], kh, kw), np.float32) * 0.05
            bias = rng.standard_normal(cout, np.float32)
            graph = helper.make_graph(
                [helper.make_node("Conv", ["x", "W", "B"], ["y"], kernel_shape=[kh, kw], strides=[c["stride"]] * 2,
                                  dilations=[c["dilation"]] * 2, pads=c["pads"], group=c["group"])],
                "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                [helper.make_tensor("W", TensorProto.FLOAT, weight.shape, weight.tobytes(), raw=True),
                 helper.make_tensor("B", TensorProto.FLOAT, bias.shape, bias.tobytes(), raw=True)],
            )  # fmt: skip
            onnx_path = Path(tmp) / "layer.onnx"
            onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(onnx_path))
            options = _ort_options(int(threads))
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
            ort_s = _time(lambda s=session, feed={"x": x}: s.run(None, feed), int(runs))

            conv = functools.partial(paddle.static.nn.conv2d, num_filters=cout, filter_size=[kh, kw],
                                     stride=c["stride"], padding=c["pads"][:2], dilation=c["dilation"],
                                     groups=c["group"])  # fmt: skip
            predictor = _paddle_conv_predictor(Path(tmp), conv, (1, cin, h, w), int(threads))
            _feed(predictor, x)
            paddle_s = _time(predictor.run, int(runs))
            out.append({**c, "ort_ms": ort_s * 1000, "paddle_ms": paddle_s * 1000})
    return {"layers": out}


def fetch(url: str, sha256: str, size: str, profiled: str = "0") -> dict[str, Any]:
    """Time one zoo.net.fetch.fetch; with ``profiled`` "1", also split its time by what the profiler saw it doing."""
    import cProfile
    import pstats

    from zoo.net import fetch as fetch_mod
    from zoo.registry.entries import Artifact

    artifact = Artifact("onnx", (url,), sha256, int(size))
    profiler = cProfile.Profile() if profiled == "1" else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    got = fetch_mod.fetch(artifact, pin_id="bench/onnx", force=True, progress=False)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {"seconds": seconds, "size": got.size, "sha256": got.sha256}
    if profiler:
        kinds = {"recv": "socket reads", "recv_into": "socket reads", "update": "sha256", "write": "file writes",
                 "fsync": "fsync", "load_verify_locations": "TLS context setup", "set_default_verify_paths":
                 "TLS context setup", "replace": "rename into place",
                 "acquire": "waiting for the sha256 thread"}  # fmt: skip
        split: dict[str, float] = {}
        calls: dict[str, int] = {}
        for (_, _, func), (_, ncalls, tottime, _, _) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
            if not func.startswith("<"):  # C functions only: Python functions of the same name do not count
                continue
            name = re.sub(r"^<(?:method|built-in method) '?([\w.]+)'?.*$", r"\1", func).rsplit(".", 1)[-1]
            kind = kinds.get(name)
            if kind:
                split[kind] = split.get(kind, 0.0) + tottime
                calls[kind] = calls.get(kind, 0) + ncalls
        split["everything else (Python: zoo, http.client)"] = max(seconds - sum(split.values()), 0.0)
        result["split_s"] = split
        result["calls"] = calls
    return result


def fetch_plain(url: str, dest: str) -> dict[str, Any]:
    """What plain Python can do: http.client into a 1 MiB buffer, sha256 and write each block, fsync at the end."""
    import hashlib
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    started = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    conn.request("GET", parts.path)
    response = conn.getresponse()
    digest, buf, total = hashlib.sha256(), bytearray(1 << 20), 0
    view = memoryview(buf)
    with open(dest, "wb") as f:
        while n := response.readinto(buf):
            digest.update(view[:n])
            f.write(view[:n])
            total += n
        f.flush()
        os.fsync(f.fileno())
    conn.close()
    return {"seconds": time.perf_counter() - started, "size": total, "sha256": "sha256:" + digest.hexdigest()}


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
                sent = {"path": self.path, "range": self.headers.get("Range"), "bytes": self.bytes_out}
                self.server.sent.append(sent)

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
    "runner-vs-bare": runner_vs_bare, "folder": folder, "profile": profile, "peak-conv": peak_conv,
    "paddle-conv": paddle_conv, "layer-compare": layer_compare, "fetch": fetch, "fetch-plain": fetch_plain,
}  # fmt: skip

if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "serve":
        serve(*args)
    os.environ.setdefault("GLOG_minloglevel", "2")
    result = MODES[mode](*args[:-1])
    Path(args[-1]).write_text(json.dumps(result), encoding="utf-8")
