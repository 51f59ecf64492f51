"""zoo's two built-in backends, registered in pyproject.toml under ``zoo.backends`` exactly as a third party would.

This module only describes them (it imports nothing heavy); each runner module is imported when a model is opened.
"""

from __future__ import annotations

from zoo.registry.spec import Backend

ONNX = Backend(
    name="onnx",
    summary="ONNX Runtime: the converted .onnx model, graph optimisation on, one intra-op thread per core",
    formats=("onnx",),
    runner="zoo.runners.ort:open_runner",
    devices=("cpu", "gpu"),
    precisions=("fp32", "fp16", "int8"),
    requires=("onnxruntime",),
    install="pip install onnxruntime (or onnxruntime-gpu for --device gpu)",
    default=True,  # fast on CPU and light to install: what runs when no backend is named
)

PADDLE = Backend(
    name="paddle",
    summary="Paddle Inference: the Paddle model folder (PIR model.json or legacy model.pdmodel), oneDNN on CPU "
    "(bf16: PIR programs, AVX-512 BF16 CPUs)",
    formats=("paddle",),
    runner="zoo.runners.paddle:open_runner",
    devices=("cpu", "gpu"),
    precisions=("fp32", "bf16"),
    requires=("paddle",),
    install="pip install paddlepaddle (or paddlepaddle-gpu for --device gpu)",
    reference=True,  # the framework the models were exported from: float32 Paddle is what "correct" means
)
