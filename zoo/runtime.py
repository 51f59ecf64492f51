"""Running a model: preprocessing, the two inference backends, and :func:`load` → :class:`Model`.

Both runners take the preprocessed float32 ``[1, 3, H, W]`` tensor and return the model's first output as it is:
int32/int64 class ids (``[N, H, W]`` or ``[N, 1, H, W]``) or float scores ``[N, C, H, W]``. :class:`Model` turns that
into an ``[H, W]`` label map at the image's own size. Input and output names are always read from the model: real
exports use ``x`` → ``argmax_0.tmp_0``, ``save_infer_model/scale_0.tmp_0`` or ``fetch_name_0``.

``--device gpu`` means the CUDA provider really runs the model, or a :class:`~zoo.errors.BackendError`: zoo never
falls back to the CPU silently.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from zoo.errors import BackendError, ImageError
from zoo.spec import Architecture, InputSpec

if TYPE_CHECKING:
    import numpy as np

BACKENDS = ("onnx", "paddle")
DEVICES = ("cpu", "gpu")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class MetadataWarning(UserWarning):
    """A model file has no (or unreadable) zoo metadata, so defaults decide its preprocessing and classes."""


def preprocess(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` → the network's float32 ``[1, 3, H, W]``: PaddleSeg's ``(x * scale - mean) / std``."""
    import numpy as np

    if spec.size_policy == "resize" and spec.size:
        import cv2

        h, w = spec.size
        if rgb.shape[:2] != (h, w):
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
    if spec.color.upper() == "BGR":
        rgb = rgb[:, :, ::-1]
    std = np.asarray(spec.std, dtype=np.float64)
    gain = (spec.scale / std).astype(np.float32)[:, None, None]  # (x * scale - mean) / std == x * gain + bias
    bias = (-np.asarray(spec.mean, dtype=np.float64) / std).astype(np.float32)[:, None, None]
    x = np.empty((1, 3, rgb.shape[0], rgb.shape[1]), dtype=np.float32)
    np.multiply(rgb.transpose(2, 0, 1), gain, out=x[0])  # HWC → CHW happens inside the one pass
    x[0] += bias
    return x if spec.dtype == "float32" else x.astype(spec.dtype)


class Runner(Protocol):
    """What both backends offer."""

    backend: str  # "onnx" or "paddle"
    device: str  # "cpu" or "gpu"
    input_name: str  # read from the model
    output_names: list[str]  # read from the model; run() returns the first
    providers: list[str]  # what actually runs the model
    threads: int  # CPU threads for one inference

    def run(self, x: np.ndarray) -> np.ndarray: ...


def _check_device(device: str) -> None:
    if device not in DEVICES:
        raise BackendError(f"unknown device '{device}'; choose one of: {', '.join(DEVICES)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OnnxRunner:
    """One ONNX Runtime session: graph optimisation on, one intra-op thread per core unless told otherwise."""

    backend = "onnx"

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu", threads: int | None = None):
        import onnxruntime as ort

        _check_device(device)
        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"{self.path}: no such ONNX model file")
        self.device = device
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
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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
                f"ONNX Runtime cannot load {self.path}: {_first_line(exc)}; is it a valid .onnx file? "
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
            raise BackendError(f"ONNX Runtime failed on an input of shape {list(x.shape)}: {_first_line(exc)}") from exc


class PaddleRunner:
    """One Paddle Inference predictor over a model folder (PIR ``model.json`` or legacy ``model.pdmodel``).

    On CPU, :func:`zoo.paddle_config.configure` picks the fastest settings that give correct results for the program's
    format (oneDNN for both; for PIR programs with the pass removed that breaks bilinear interpolation);
    ``.mkldnn`` and ``.setup`` say what was used.
    """

    backend = "paddle"

    def __init__(self, model_dir: str | os.PathLike[str], device: str = "cpu", threads: int | None = None):
        from zoo import cache

        _check_device(device)
        self.path = Path(model_dir)
        if not self.path.is_dir():
            raise BackendError(f"{self.path}: no such Paddle model folder (model.json|model.pdmodel + model.pdiparams)")
        program = next((self.path / n for n in cache.PROGRAM_FILES if (self.path / n).is_file()), None)
        params = self.path / cache.PARAMS_FILE
        if program is None or not params.is_file():
            raise BackendError(
                f"{self.path} is not a Paddle inference model: it needs model.json or model.pdmodel, and "
                f"{cache.PARAMS_FILE}"
            )
        self.device = device
        self.threads = int(threads or os.cpu_count() or 1)
        self.setup: dict[str, Any] = {}
        from paddle import inference

        config = inference.Config(str(program), str(params))
        if device == "gpu":
            import paddle

            if not paddle.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
                raise BackendError(
                    "--device gpu needs a CUDA build of paddlepaddle and a visible GPU, and this machine has "
                    "neither; install paddlepaddle-gpu, or run with --device cpu"
                )
            config.enable_use_gpu(256, 0)
            self.mkldnn = False
            self.providers = ["paddle-gpu"]
        else:
            from zoo import paddle_config

            self.setup = paddle_config.configure(config, program, threads=self.threads)
            self.mkldnn = bool(self.setup["mkldnn"])
            self.providers = ["paddle-cpu-onednn" if self.mkldnn else "paddle-cpu"]
        config.switch_ir_optim(True)
        config.disable_glog_info()
        try:
            self.predictor = inference.create_predictor(config)
        except Exception as exc:
            raise BackendError(f"Paddle Inference cannot load {self.path}: {_first_line(exc)}") from exc
        names = list(self.predictor.get_input_names())
        if len(names) != 1:
            raise BackendError(f"{self.path} takes {len(names)} inputs ({', '.join(names)}); zoo runs single-image models")
        self.input_name = names[0]
        self.output_names = list(self.predictor.get_output_names())
        self.program = program.name

    def run(self, x: np.ndarray) -> np.ndarray:
        try:
            handle = self.predictor.get_input_handle(self.input_name)
            handle.reshape(list(x.shape))
            handle.copy_from_cpu(x)
            self.predictor.run()
            return self.predictor.get_output_handle(self.output_names[0]).copy_to_cpu()
        except Exception as exc:
            raise BackendError(f"Paddle Inference failed on an input of shape {list(x.shape)}: {_first_line(exc)}") from exc


# ---- the model a user holds -----------------------------------------------------------------------------------------


@dataclass
class Model:
    """A loaded model: preprocessing, a runner and the classes it predicts. ``predict`` is all most callers need."""

    name: str  # registry name, or the model file's name
    source: Path  # the .onnx file or Paddle model folder that runs
    runner: Runner  # OnnxRunner or PaddleRunner
    architecture: Architecture  # the plugin (or one built from ONNX metadata) with the input spec, labels, palette
    num_classes: int  # classes the model predicts

    @property
    def backend(self) -> str:
        return self.runner.backend

    @property
    def providers(self) -> list[str]:
        return list(self.runner.providers)

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names; index = class id (``class_<i>`` past the plugin's list)."""
        names = tuple(self.architecture.labels)
        return names + tuple(f"class_{i}" for i in range(len(names), self.num_classes))

    @property
    def colors(self) -> tuple[tuple[int, int, int], ...]:
        """RGB colour per class id, one per label."""
        n = len(self.labels)
        return self.architecture.colors(n)[:n]

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """Check an RGB array and make the network's input tensor."""
        import numpy as np

        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            got = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise ImageError(f"predict() takes an RGB uint8 array of shape (H, W, 3), got a {got}; "
                             "read files with zoo.images.read_image")  # fmt: skip
        if rgb.shape[0] < 1 or rgb.shape[1] < 1:
            raise ImageError(f"predict() got an empty image of shape {rgb.shape}")
        return preprocess(rgb, self.architecture.input)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The runner's first output for one input tensor."""
        return self.runner.run(x)

    def to_labels(self, output: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """First output → ``[H, W]`` class ids at ``size`` (H, W): uint8 when they fit, else int32."""
        return output_to_labels(output, size)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 ``[H, W, 3]`` → label map ``[H, W]`` (class ids, uint8 when they fit)."""
        return self.to_labels(self.infer(self.prepare(rgb)), (rgb.shape[0], rgb.shape[1]))


def output_to_labels(output: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A model's first output (class ids ``[N, H, W]``/``[N, 1, H, W]`` or scores ``[N, C, H, W]``) → ``[H, W]``.

    Scores are resized bilinearly to ``size`` before the argmax (as PaddleSeg does), class ids by nearest neighbour.
    """
    import cv2
    import numpy as np

    out = np.asarray(output)
    h, w = size
    if np.issubdtype(out.dtype, np.integer):
        if out.ndim == 4 and out.shape[1] == 1:
            out = out[:, 0]
        if out.ndim == 3:
            out = out[0]
        if out.ndim != 2:
            raise BackendError(f"the model's label output has shape {list(output.shape)}; expected [N, H, W]")
        if out.shape != (h, w):
            out = cv2.resize(out.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
    elif np.issubdtype(out.dtype, np.floating) and out.ndim == 4:
        scores = out[0]
        if scores.shape[1:] != (h, w):
            hwc = np.ascontiguousarray(scores.transpose(1, 2, 0), dtype=np.float32)
            resized = cv2.resize(hwc, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
            out = resized.argmax(axis=2)
        else:
            out = scores.argmax(axis=0)
    else:
        raise BackendError(
            f"the model's first output is {out.dtype} of shape {list(output.shape)}; zoo expects class ids "
            "(int [N, H, W]) or scores (float [N, C, H, W])"
        )
    if out.size and (out.min() < 0 or out.max() > 255):
        return out.astype(np.int32)
    return out.astype(np.uint8)


# ---- load -----------------------------------------------------------------------------------------------------------


def load(
    name_or_path: str | os.PathLike[str],
    *,
    backend: str = "onnx",
    device: str = "cpu",
    threads: int | None = None,
    registries: list[Path] | None = None,
) -> Model:
    """A runnable model from a registry name (the cached ONNX or Paddle model), an ``.onnx`` file or a model folder.

    A registry name takes its preprocessing and classes from its architecture plugin; an ``.onnx`` file from zoo's
    ``zoo.*`` metadata when it has it, else PaddleSeg's defaults (with a warning). ``backend`` is "onnx" or "paddle".
    """
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    _check_device(device)
    path = _as_path(name_or_path, registries)
    if path is None:
        return _load_registered(str(name_or_path), backend, device, threads, registries)
    if backend == "onnx":
        if path.is_dir():
            raise BackendError(f"{path} is a folder; run a Paddle model folder with --backend paddle, or give an .onnx file")
        runner: Runner = OnnxRunner(path, device, threads)
        meta = _onnx_metadata(runner, path)
    else:
        if path.is_file():
            raise BackendError(f"{path} is a file; --backend paddle runs a Paddle model folder (model.json|model.pdmodel)")
        runner = PaddleRunner(path, device, threads)
        meta = _deploy_metadata(path)
    arch = _architecture_from(meta, path)
    num_classes = int(meta.get("num_classes") or len(arch.labels))
    return Model(path.stem if path.is_file() else path.name, path, runner, arch, num_classes)


def _as_path(name_or_path: str | os.PathLike[str], registries: list[Path] | None) -> Path | None:
    """The model path meant, or None for a registry name."""
    if isinstance(name_or_path, os.PathLike):
        return Path(name_or_path)
    text = str(name_or_path)
    if text.endswith(".onnx") or "/" in text or os.sep in text:
        return Path(text).expanduser()
    if Path(text).is_dir():
        from zoo import registry

        if text not in registry.load(registries):
            return Path(text)
    return None


def _load_registered(name: str, backend: str, device: str, threads: int | None, registries: list[Path] | None) -> Model:
    from zoo import cache, plugins, registry, resolve

    entry = registry.get(name, registries)
    arch = plugins.get_architecture(entry.architecture)
    resolve.ensure(name, backend=backend, registries=registries)  # pull and convert what is missing
    # a cached file changed since it was written would give wrong masks silently: re-hash before loading
    if backend == "onnx":
        source = cache.onnx_model_path(name)
        cache.verify_files(source.parent, [source.name], fix=f"run 'zoo convert {name} --force'")
        runner: Runner = OnnxRunner(source, device, threads)
    else:
        source = cache.paddle_model_dir(name)
        files = [cache.program_file(source).name, cache.PARAMS_FILE]
        cache.verify_files(source, files, fix=f"run 'zoo pull {name} --force' to fetch it again")
        runner = PaddleRunner(source, device, threads)
    return Model(name, source, runner, arch, int(entry.num_classes or len(arch.labels)))


def _onnx_metadata(runner: OnnxRunner, path: Path) -> dict[str, Any]:
    """zoo's ``zoo.*`` metadata_props (read by the session already) → architecture, input, labels, palette, ..."""
    from zoo.convert import decode_metadata

    try:
        raw = decode_metadata(runner.metadata)
        meta: dict[str, Any] = {k: raw[k] for k in ("architecture", "output_op") if raw.get(k)}
        if raw.get("input") is not None:
            meta["input"] = _input_spec(raw["input"])
        if raw.get("labels"):
            meta["labels"] = tuple(str(n) for n in raw["labels"])
        if raw.get("palette"):
            meta["palette"] = tuple((int(r), int(g), int(b)) for r, g, b in raw["palette"])
        if raw.get("num_classes"):
            meta["num_classes"] = int(raw["num_classes"])
        return meta
    except (ValueError, TypeError, AttributeError) as exc:
        warnings.warn(f"{path}: ignoring its unreadable zoo metadata ({exc})", MetadataWarning, stacklevel=3)
        return {}


def _input_spec(d: dict[str, Any]) -> InputSpec:
    known = InputSpec.__dataclass_fields__
    values = {k: v for k, v in d.items() if k in known}
    for key in ("mean", "std", "size"):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    if "scale" in values:
        values["scale"] = float(values["scale"])
    return InputSpec(**values)


def _deploy_metadata(folder: Path) -> dict[str, Any]:
    """What a Paddle model folder's deploy.yaml says about preprocessing (zoo's ``input``, or PaddleSeg's Normalize)."""
    deploy = folder / "deploy.yaml"
    if not deploy.is_file():
        return {}
    import yaml

    try:
        doc = (yaml.safe_load(deploy.read_text(encoding="utf-8")) or {}).get("Deploy", {})
        if isinstance(doc.get("input"), dict):
            return {"input": _input_spec(doc["input"])}
        for transform in doc.get("transforms") or []:
            if transform.get("type") == "Normalize":
                mean = tuple(transform.get("mean", (0.5, 0.5, 0.5)))
                std = tuple(transform.get("std", (0.5, 0.5, 0.5)))
                return {"input": InputSpec(mean=mean, std=std)}
    except (yaml.YAMLError, AttributeError, TypeError, ValueError) as exc:
        warnings.warn(f"{deploy}: ignoring unreadable deploy.yaml ({exc})", MetadataWarning, stacklevel=3)
    return {}


def _architecture_from(meta: dict[str, Any], path: Path) -> Architecture:
    """The Architecture a model file describes: its plugin updated by the metadata, or one made from the metadata."""
    from zoo import plugins
    from zoo.errors import PluginError

    if not meta.get("architecture") and not meta.get("labels"):
        defaults = ["Cityscapes class names", "PaddleSeg's pseudo-colour palette"]
        if "input" not in meta:
            defaults.insert(0, "PaddleSeg's preprocessing ((x/255 - 0.5) / 0.5, no resize)")
        warnings.warn(
            f"{path} carries no zoo metadata, so zoo uses {', '.join(defaults)}; "
            "if they are wrong, run the model by its registry name or make it with 'zoo convert'",
            MetadataWarning,
            stacklevel=3,
        )
    base = None
    if meta.get("architecture"):
        try:
            base = plugins.get_architecture(meta["architecture"])
        except PluginError:
            base = None
    if base is None:
        base = Architecture(name=meta.get("architecture") or "unknown", summary=f"from {path.name}")
    changes: dict[str, Any] = {k: meta[k] for k in ("input", "labels", "palette") if k in meta}
    return replace(base, **changes) if changes else base
