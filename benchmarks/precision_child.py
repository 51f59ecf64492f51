"""One precision configuration of one model, timed in a process of its own (run by benchmarks/precision.py).

``python precision_child.py CONFIG NAME MODEL H W WARMUP RUNS SCENES OUT`` where CONFIG is one of ``paddle-fp32``,
``paddle-fp32-pir``, ``paddle-bf16``, ``ort-fp32``, ``ort-int8``, ``openvino-fp32``, ``openvino-bf16``,
``openvino-int8``, ``openvino-paddle-fp32``, ``openvino-paddle-bf16``, NAME the registry model and MODEL the
Paddle model folder or the .onnx file it runs. Times ``runner.run(x)`` on synthetic street scene 1000 (the float32
tensor zoo's preprocessing makes), saves the label maps of scenes 1000, 1001, ... (``OUT.labels.npy``) and writes
``OUT`` (JSON: times in ms, what ran, or the error that stopped it).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402


def _open(config: str, model: Path, threads: int):
    from zoo.runners import runtime

    engine, precision = config.split("-")[:2]  # "paddle-fp32-pir": the PIR program in float32
    if engine == "paddle":
        runner = runtime.PaddleRunner(model, threads=threads, precision=precision)  # bf16: enable_mkldnn_bfloat16
        runner.describe = lambda: {"engine": "paddle-inference", "precision": precision, **runner.setup}  # type: ignore
        return runner
    if engine == "ort":
        runner = runtime.OnnxRunner(model, threads=threads)
        runner.describe = lambda: {"engine": "onnxruntime", "precision": precision,  # type: ignore
                                   "providers": runner.providers}  # fmt: skip
        return runner
    from zoo.runners.openvino import open_paddle_runner, open_runner

    if config.startswith("openvino-paddle-"):  # the legacy Paddle program, read by OpenVINO's Paddle frontend
        return open_paddle_runner(model, threads=threads, precision=config.rsplit("-", 1)[1])
    return open_runner(model, threads=threads, precision=precision)


def main() -> None:
    config, name, model, h, w, warmup, runs, scenes, out = sys.argv[1:10]
    size = (int(h), int(w))
    from zoo.runners.runtime import output_to_labels, preprocess
    from zoo.registry import plugins, entries as registry
    from zoo.synthetic import street_scene

    doc: dict = {"config": config, "model": model, "size": list(size)}
    try:
        started = time.perf_counter()
        runner = _open(config, Path(model), threads=2)
        spec = plugins.get_architecture(registry.get(name).architecture).input
        xs = [preprocess(street_scene(*size, seed=1000 + i), spec) for i in range(int(scenes))]
        labels = [output_to_labels(runner.run(x), size) for x in xs]
        doc["load_and_first_s"] = round(time.perf_counter() - started, 2)
        for _ in range(int(warmup)):
            runner.run(xs[0])
        times = []
        for _ in range(int(runs)):
            t = time.perf_counter()
            runner.run(xs[0])
            times.append((time.perf_counter() - t) * 1000)
        doc["ms"] = times
        doc["describe"] = runner.describe()
        np.save(out + ".labels.npy", np.stack(labels))
    except Exception as exc:  # recorded, so that the table can say exactly what failed
        doc["error"] = " ".join(str(exc).split())[:400] or type(exc).__name__
        doc["traceback"] = traceback.format_exc()[-2000:]
    Path(out).write_text(json.dumps(doc, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
