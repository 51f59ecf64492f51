"""The smallest program that segments one image with ONNX Runtime: the baseline for zoo run's peak RSS.

``python bare_ort.py MODEL.onnx IMAGE THREADS``: decode, normalise like PaddleSeg, one session.run, argmax if the
model gives scores. Imports only numpy, cv2 and onnxruntime; writes nothing.
"""

import sys

import cv2
import numpy as np
import onnxruntime as ort

model, image, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
rgb = cv2.cvtColor(cv2.imread(image, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
x = np.ascontiguousarray(((rgb.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.log_severity_level = 3
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
out = session.run(None, {session.get_inputs()[0].name: x})[0]
labels = out.argmax(axis=1) if out.dtype.kind == "f" else out
print(labels.shape, file=sys.stderr)
