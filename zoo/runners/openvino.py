"""The OpenVINO backend: runs zoo's ONNX files (float32, or an int8 QDQ variant) on OpenVINO's CPU plugin.

Precision is always set explicitly. On a CPU with AVX-512 BF16 (or AMX), OpenVINO's CPU plugin runs float32 models
in bfloat16 unless told ``INFERENCE_PRECISION_HINT=f32`` — a different model numerically, chosen silently. So
``precision="fp32"`` asks for f32, ``"bf16"`` for bf16 (refused on a CPU that cannot), and ``"int8"`` runs a QDQ
variant as given: OpenVINO's low-precision transformations turn its QDQ pairs into integer convolutions, and what is
left in float runs in f32. :meth:`OpenVinoRunner.describe` reports what the compiled model actually runs: the
precision property and the precisions its convolutions execute in.

A second backend, ``openvino-paddle``, runs the cached Paddle model itself through OpenVINO's Paddle frontend — no
ONNX conversion. OpenVINO 2026.4 reads legacy ``model.pdmodel`` programs (what published PaddleSeg archives hold), not
Paddle 3's PIR ``model.json``. On all five architectures its labels equal Paddle Inference's (tests/test_openvino.py
checks bisenet and fcn).

A bf16 run can keep some layers in f32 (runner option ``f32_layers``, :mod:`zoo.runners.openvino_mixed`): the model
then runs as pieces compiled in the two precisions. ``zoo tune`` finds those layers through :func:`tune_search` when
bf16 alone flips too many labels.

Registered under the ``zoo.backends`` entry-point group as ``openvino = "zoo.runners.openvino:BACKEND"`` and
``openvino-paddle = "zoo.runners.openvino:PADDLE_BACKEND"``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import BackendError
from zoo.registry.spec import Backend
from zoo.util import first_line

if TYPE_CHECKING:
    import numpy as np

INSTALL = "pip install 'zoo[openvino]'"
PRECISIONS = ("fp32", "bf16", "int8")
# runner options `zoo tune` may set: f32_layers="56-63" keeps those layers of a bf16 run in f32 (openvino_mixed)
OPTIONS = ("f32_layers",)
TUNE_SEARCH_PRECISIONS = ("bf16",)  # the precisions tune_search looks for f32 layers in

_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # zoo precision → OpenVINO INFERENCE_PRECISION_HINT
_KEEP_SHAPES = 4  # compiled models kept, one per input shape (zoo run over a folder of mixed sizes)

# This backend's zoo.registry.spec.Backend, registered under the zoo.backends entry points like the built-ins.
BACKEND_FIELDS: dict[str, Any] = {
    "name": "openvino",
    "summary": "OpenVINO CPU plugin: ONNX models in float32, bfloat16, or int8 (QDQ variants)",
    "formats": ("onnx",),
    "runner": "zoo.runners.openvino:open_runner",
    "devices": ("cpu",),
    "precisions": PRECISIONS,
    "requires": ("openvino",),
    "install": INSTALL,
}
BACKEND = Backend(**BACKEND_FIELDS)
PADDLE_BACKEND = Backend(**{
    **BACKEND_FIELDS, "name": "openvino-paddle", "formats": ("paddle",), "precisions": ("fp32", "bf16"),
    "summary": "OpenVINO CPU plugin on the Paddle model itself (legacy model.pdmodel), no ONNX: float32 or bfloat16",
    "runner": "zoo.runners.openvino:open_paddle_runner",
})  # fmt: skip


def tune_search(*args: Any, **kwargs: Any) -> Any:
    """What ``zoo tune`` calls when this backend's bf16 falls short of the labels asked for: which layers to keep in
    f32 (:func:`zoo.runners.openvino_mixed.search`)."""
    from zoo.runners import openvino_mixed

    return openvino_mixed.search(*args, **kwargs)


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise BackendError(f"the openvino backend needs the openvino package, which is not installed ({exc}); "
                           f"run: {INSTALL}")  # fmt: skip
    return openvino


def open_runner(model_path: Path, *, device: str = "cpu", threads: int | None = None, precision: str = "fp32",
                options: dict[str, Any] | None = None) -> OpenVinoRunner:  # fmt: skip
    """A runner for one ONNX file on OpenVINO's CPU plugin (the ``zoo.backends`` runner callable; ``options``: see
    :data:`OPTIONS`)."""
    return OpenVinoRunner(Path(model_path), device=device, threads=threads, precision=precision, options=options)


def open_paddle_runner(model_path: Path, *, device: str = "cpu", threads: int | None = None,
                       precision: str = "fp32", options: dict[str, Any] | None = None) -> OpenVinoRunner:  # fmt: skip
    """A runner for a Paddle model folder's legacy program on OpenVINO's CPU plugin (``openvino-paddle``)."""
    from zoo.runners import paddle_config
    from zoo.store import cache
    from zoo.errors import NotCachedError

    folder = Path(model_path)
    try:
        program = cache.program_file(folder)
    except NotCachedError:
        raise BackendError(f"{folder}: no Paddle program (model.pdmodel) to run") from None
    if paddle_config.program_format(program) != "legacy":
        raise BackendError(f"OpenVINO reads legacy Paddle programs (model.pdmodel), and {folder} holds a PIR "
                           "model.json; use --backend openvino (the ONNX conversion) or --backend paddle, or make a legacy "
                           "program it reads: zoo export MODEL --legacy")  # fmt: skip
    if precision not in PADDLE_BACKEND.precisions:
        raise BackendError(f"the openvino-paddle backend runs {', '.join(PADDLE_BACKEND.precisions)}, not "
                           f"'{precision}'; int8 variants are ONNX files: use --backend openvino")  # fmt: skip
    runner = OpenVinoRunner(program, device=device, threads=threads, precision=precision, options=options)
    runner.backend = PADDLE_BACKEND.name
    return runner


class OpenVinoRunner:
    """One OpenVINO model, compiled for the CPU with a fixed thread count, one stream and an explicit precision."""

    backend = "openvino"

    def __init__(self, path: Path, *, device: str = "cpu", threads: int | None = None, precision: str = "fp32",
                 options: dict[str, Any] | None = None):  # fmt: skip
        ov = _import_openvino()
        unknown = sorted(set(options or {}) - set(OPTIONS))
        if unknown:
            raise BackendError(f"the openvino backend has no option {', '.join(unknown)}; "
                               f"it takes {', '.join(OPTIONS)}")  # fmt: skip
        self.f32_layers: tuple[tuple[int, int], ...] = ()
        if (options or {}).get("f32_layers"):
            from zoo.runners import openvino_mixed

            if precision != "bf16":
                raise BackendError(f"f32_layers keeps layers of a bf16 run in f32; with --precision {precision} "
                                   "leave it out")  # fmt: skip
            self.f32_layers = openvino_mixed.parse((options or {})["f32_layers"])
        if device != "cpu":
            raise BackendError(f"the openvino backend runs on the CPU only, not '{device}'; use --device cpu")
        if precision not in PRECISIONS:
            raise BackendError(f"the openvino backend runs {', '.join(PRECISIONS)}, not '{precision}'")
        if not path.is_file():
            raise BackendError(f"{path}: no such ONNX model file")  # open_paddle_runner checked its program
        self.path, self.device, self.precision = path, device, precision
        self.threads = int(threads or os.cpu_count() or 1)
        self.providers = ["openvino-cpu"]
        self._ov = ov
        self._core = ov.Core()
        if precision == "bf16":
            caps = self._core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            if "BF16" not in caps:
                raise BackendError(f"this CPU cannot run bfloat16 (OpenVINO reports {', '.join(caps)}); "
                                   "use --precision fp32")  # fmt: skip
        try:
            self._model = self._core.read_model(str(path))
        except Exception as exc:
            again = "pull it again with 'zoo pull NAME --force'" if path.suffix == ".pdmodel" else \
                "convert it again with 'zoo convert NAME --force'"
            raise BackendError(f"OpenVINO cannot read {path}: {first_line(exc)}; {again}") from exc
        inputs = self._model.inputs
        if len(inputs) != 1:
            raise BackendError(f"{path} takes {len(inputs)} inputs; zoo runs single-image models")
        self.input_name = inputs[0].get_any_name()
        self.output_names = [o.get_any_name() for o in self._model.outputs]
        self.config = {
            "INFERENCE_PRECISION_HINT": _HINT[precision],
            "INFERENCE_NUM_THREADS": self.threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
        }
        self._compiled: dict[tuple[int, ...], Any] = {}  # input shape → (compiled model, infer request)
        self._last: Any = None

    def _request(self, shape: tuple[int, ...]) -> Any:
        """The infer request for an input shape: compiled for that static shape (OpenVINO is fastest static)."""
        if shape not in self._compiled:
            model = self._model.clone()
            model.reshape({self.input_name: list(shape)})
            try:
                if self.f32_layers:
                    from zoo.runners import openvino_mixed

                    pieces = openvino_mixed.compile_pieces(self._core, model, self.f32_layers, "bf16", self.config,
                                                           self._ov)  # fmt: skip
                    entry = (pieces.compiled, pieces)
                else:
                    compiled = self._core.compile_model(model, "CPU", self.config)
                    entry = ([compiled], compiled.create_infer_request())
            except BackendError:
                raise
            except Exception as exc:
                raise BackendError(f"OpenVINO cannot compile {self.path} for input {list(shape)}: "
                                   f"{first_line(exc)}") from exc  # fmt: skip
            if len(self._compiled) >= _KEEP_SHAPES:
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[shape] = entry
        self._last = self._compiled[shape][0]
        return self._compiled[shape][1]

    def run(self, x: np.ndarray) -> np.ndarray:
        request = self._request(tuple(x.shape))
        try:
            if self.f32_layers:
                return request.run(x)
            request.infer({0: x})
        except Exception as exc:
            raise BackendError(f"OpenVINO failed on an input of shape {list(x.shape)}: {first_line(exc)}") from exc
        return request.get_output_tensor(0).data.copy()

    def compiled(self, shape: tuple[int, ...] = (1, 3, 64, 64)) -> Any:
        """The compiled model of the last run (or one compiled for ``shape``); its first piece when it runs in
        pieces (:meth:`pieces` has them all)."""
        return self.pieces(shape)[0]

    def pieces(self, shape: tuple[int, ...] = (1, 3, 64, 64)) -> list[Any]:
        """Every compiled model of the last run (or of one compiled for ``shape``): one, or the f32_layers pieces."""
        if self._last is None:
            self._request(shape)
        return list(self._last)

    def layer_count(self, shape: tuple[int, ...]) -> int:
        """How many layers (convolutions, matrix products) ``f32_layers`` counts in this model at ``shape``."""
        from zoo.runners import openvino_mixed

        model = self._model.clone()
        model.reshape({self.input_name: list(shape)})
        return len(openvino_mixed.layer_positions(openvino_mixed.folded(model)))

    def describe(self) -> dict[str, Any]:
        """What ran: engine, version, threads, the precision the compiled model runs, and its convolutions'
        execution precisions (``runtimePrecision`` of the executable graph)."""
        from zoo.runners import openvino_mixed

        compiled = self.compiled()
        hint = _zoo_precision(compiled.get_property("INFERENCE_PRECISION_HINT").to_string())
        if self.f32_layers:
            hint = self.precision  # the first piece's hint is whichever precision the model starts in
        conv: dict[str, int] = {}
        for piece in self.pieces():
            for op in piece.get_runtime_model().get_ordered_ops():
                info = op.get_rt_info()
                if "layerType" in info and info["layerType"].astype(str) == "Convolution":
                    key = _zoo_precision(info["runtimePrecision"].astype(str)) if "runtimePrecision" in info else "?"
                    conv[key] = conv.get(key, 0) + 1
        # what the convolutions (nearly all of the work) run in; the hint where the graph has none
        ran = max(conv, key=lambda k: conv[k]) if conv else hint
        mixed = {"f32_layers": openvino_mixed.text(self.f32_layers)} if self.f32_layers else {}
        return {
            "engine": "openvino", "version": self._ov.get_version(), "providers": ["openvino-CPU"], "device": self.device,
            "model_format": "paddle" if self.path.suffix == ".pdmodel" else "onnx",
            "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
            "streams": int(compiled.get_property("NUM_STREAMS")),
            "precision": ran, "inference_precision_hint": hint,
            "requested_precision": self.precision,
            "convolution_precisions": dict(sorted(conv.items())),
            "options": {**{k: str(v) for k, v in self.config.items()}, **mixed},
            **({"pieces": len(self.pieces())} if self.f32_layers else {}), **mixed,
        }  # fmt: skip


def _zoo_precision(ov_name: str) -> str:
    """OpenVINO element type name → zoo's precision name (f32 → fp32, u8/i8 → int8)."""
    names = {"f32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16", "f16": "fp16", "float16": "fp16",
             "u8": "int8", "i8": "int8"}  # fmt: skip
    return names.get(ov_name.lower(), ov_name)
