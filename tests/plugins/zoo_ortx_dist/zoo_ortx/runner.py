"""The ortx runner: one ONNX Runtime session with basic optimisation, parallel execution and spinning workers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort


class OrtxRunner:
    def __init__(self, path: Path, threads: int | None, precision: str) -> None:
        self.threads = int(threads or os.cpu_count() or 1)
        self.precision = precision
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 2
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def describe(self) -> dict[str, Any]:
        o = self.session.get_session_options()
        return {
            "engine": "onnxruntime (zoo-ortx)", "version": ort.__version__, "providers": self.session.get_providers(),
            "threads": self.threads, "precision": self.precision,
            "options": {"graph_optimization_level": str(o.graph_optimization_level).rsplit(".", 1)[-1],
                        "execution_mode": str(o.execution_mode).rsplit(".", 1)[-1],
                        "inter_op_num_threads": o.inter_op_num_threads, "intra_op_num_threads": o.intra_op_num_threads},
        }  # fmt: skip


def open_runner(model_path: Path, *, device: str = "cpu", threads: int | None = None,
                precision: str = "fp32") -> OrtxRunner:  # fmt: skip
    return OrtxRunner(model_path, threads, precision)
