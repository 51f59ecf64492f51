"""zoo-ortx: a third-party zoo backend that runs ONNX models through ONNX Runtime with its own session options.

It is what a backend package needs and nothing more: this module-level :class:`zoo.registry.spec.Backend`, one entry point
(``[zoo.backends] ortx = zoo_ortx:BACKEND``), and the runner module it names (imported only when a model is opened).
"""

from zoo.registry.spec import Backend

BACKEND = Backend(
    name="ortx",
    summary="ONNX Runtime with basic graph optimisation and parallel execution (a third-party test backend)",
    formats=("onnx",),
    runner="zoo_ortx.runner:open_runner",
    devices=("cpu",),
    precisions=("fp32",),
    requires=("onnxruntime",),
    install="pip install zoo-ortx onnxruntime",
)
