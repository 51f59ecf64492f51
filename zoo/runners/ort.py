"""The ``onnx`` backend: one ONNX Runtime session over an .onnx file."""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zoo.errors import BackendError
from zoo.util import first_line

if TYPE_CHECKING:
    import numpy as np

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEVICES = ("cpu", "gpu")
OPTIONS = ("allow_spinning",)  # runner options `zoo tune` may set (0/1: intra-op workers spin while idle)
TUNE_OPTIONS = ({"allow_spinning": 1},)  # what `zoo tune` measures besides the defaults (zoo turns spinning off)


def check_device(device: str, devices: tuple[str, ...] = DEVICES) -> None:
    if device not in devices:
        raise BackendError(f"unknown device '{device}'; choose one of: {', '.join(devices)}")


class OnnxRunner:
    """One ONNX Runtime session: graph optimisation on, one intra-op thread per core unless told otherwise."""

    backend = "onnx"

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu", threads: int | None = None,
                 precision: str = "fp32", options: Mapping[str, Any] | None = None):  # fmt: skip
        import onnxruntime as ort

        check_device(device)
        overrides = dict(options or {})
        unknown = sorted(set(overrides) - set(OPTIONS))
        if unknown:
            raise BackendError(f"the onnx backend has no option {', '.join(unknown)}; it takes {', '.join(OPTIONS)}")
        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"{self.path}: no such ONNX model file")
        self.device = device
        self.precision = precision  # the model file decides; this records what was asked for
        self.threads = int(threads or os.cpu_count() or 1)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        # Idle workers sleep instead of spinning: `zoo run DIR` decodes and writes images on other threads while this
        # session infers, and spinning workers took the CPU from them (folder throughput 0.87-0.92x -> 0.97x of bare
        # session.run on 2 cores); one inference alone costs 0-5% more (danet most). BENCHMARKS.md, sections 2-3.
        # `zoo tune` may measure and choose spinning back on for one model (options={"allow_spinning": 1}): one
        # inference alone is then faster, which is what a tuned `zoo run IMAGE` is about.
        spinning = int((overrides or {}).get("allow_spinning", 0))
        options.add_session_config_entry("session.intra_op.allow_spinning", str(spinning))
        # No memory pattern (ORT's one block planned from the first run's shapes): with it, zoo eval's peak RSS over
        # bisenet at 1024x2048 landed at 882-886 MB in some processes and 1,034-1,057 MB in others, decided in the
        # first two images; without it, 776-782 MB in every process, and no slower (0.90-1.09x of the pattern's time
        # on 13 models at 512x1024; zoo eval 1.13-1.21 images/s vs 1.02-1.09). BENCHMARKS.md, section 11.
        options.enable_mem_pattern = False
        providers = [CPU]
        if device == "gpu":
            available = ort.get_available_providers()
            if CUDA not in available:
                raise BackendError(
                    f"--device gpu needs ONNX Runtime's {CUDA}, but this onnxruntime has only "
                    f"{', '.join(available)}; install onnxruntime-gpu with a CUDA driver, or run with --device cpu"
                )
            providers = [CUDA, CPU]
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/InvalidProtobuf/... types
            raise BackendError(
                f"ONNX Runtime cannot load {self.path}: {first_line(exc)}; is it a valid .onnx file? "
                "Convert the model again with 'zoo convert'"
            ) from exc
        self.providers = list(self.session.get_providers())
        if device == "gpu" and (not self.providers or self.providers[0] != CUDA):
            raise BackendError(
                f"--device gpu: ONNX Runtime did not start {CUDA} (the session runs on {', '.join(self.providers)}); "
                "check the CUDA/cuDNN installation (nvidia-smi), or run with --device cpu"
            )
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise BackendError(f"{self.path} takes {len(inputs)} inputs ({names}); zoo runs single-image models")
        self.input_name = inputs[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, x: np.ndarray) -> np.ndarray:
        try:
            return self.session.run(self.output_names[:1], {self.input_name: x})[0]
        except Exception as exc:
            raise BackendError(f"ONNX Runtime failed on an input of shape {list(x.shape)}: {first_line(exc)}") from exc

    def describe(self) -> dict[str, Any]:
        """What runs the model: ONNX Runtime's version, providers, threads and the session options that matter."""
        import onnxruntime as ort

        return {
            "engine": "onnxruntime", "version": ort.__version__, "device": self.device,
            "providers": list(self.providers), "threads": self.threads, "precision": self.precision,
            "options": session_options(self.session),
        }  # fmt: skip


def session_options(session: Any) -> dict[str, Any]:
    """The settings of a session that matter for speed, read back from ONNX Runtime itself."""
    options = session.get_session_options()
    config: dict[str, Any] = {
        "graph_optimization_level": str(options.graph_optimization_level).rsplit(".", 1)[-1],
        "intra_op_num_threads": options.intra_op_num_threads,
        "inter_op_num_threads": options.inter_op_num_threads,
        "execution_mode": str(options.execution_mode).rsplit(".", 1)[-1],
        "enable_mem_pattern": bool(options.enable_mem_pattern),
    }
    try:
        config["allow_spinning"] = int(options.get_session_config_entry("session.intra_op.allow_spinning"))
    except RuntimeError:  # not set: ONNX Runtime's default
        config["allow_spinning"] = 1
    return config


def open_runner(model_path: Path, *, device: str = "cpu", threads: int | None = None,
                precision: str = "fp32", options: Mapping[str, Any] | None = None) -> OnnxRunner:  # fmt: skip
    """The ``onnx`` backend's runner over an .onnx file (``options``: see :data:`OPTIONS`)."""
    return OnnxRunner(model_path, device, threads, precision, options)
