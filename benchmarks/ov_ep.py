"""Time one ONNX model on ONNX Runtime's OpenVINO execution provider (run by benchmarks/run.py in its own venv).

``python ov_ep.py MODEL.onnx INPUT.npy THREADS PRECISION WARMUP RUNS LABELS.npy RESULT.json``

onnxruntime-openvino replaces the onnxruntime package, so it lives in a venv of its own and this script imports
only numpy and onnxruntime. PRECISION is ``f32`` or ``bf16`` (OpenVINO's CPU INFERENCE_PRECISION_HINT). Writes the
label map (argmax of scores, or the model's own labels) to LABELS.npy and the timings to RESULT.json.
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort

model, x_path, threads, precision, warmup, runs, labels_path, result_path = sys.argv[1:9]
x = np.load(x_path)
options = ort.SessionOptions()
options.log_severity_level = 3
provider = {
    "device_type": "CPU",
    "num_of_threads": threads,
    "num_streams": "1",
    "load_config": json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": precision}}),
}
started = time.perf_counter()
session = ort.InferenceSession(model, options, providers=["OpenVINOExecutionProvider", "CPUExecutionProvider"],
                               provider_options=[provider, {}])  # fmt: skip
load_s = time.perf_counter() - started
feed = {session.get_inputs()[0].name: x}
output = session.get_outputs()[0].name
for _ in range(int(warmup)):
    session.run([output], feed)
times = []
for _ in range(int(runs)):
    started = time.perf_counter()
    out = session.run([output], feed)[0]
    times.append(time.perf_counter() - started)
labels = out.argmax(axis=1) if out.dtype.kind == "f" else out.reshape(out.shape[0], *out.shape[-2:])
np.save(labels_path, labels.astype(np.int64))
doc = {"ms": [t * 1000 for t in times], "load_s": load_s, "providers": session.get_providers(),
       "onnxruntime": ort.__version__, "precision": precision}  # fmt: skip
with open(result_path, "w", encoding="utf-8") as f:
    json.dump(doc, f)
