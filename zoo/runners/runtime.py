"""Running a model: preprocessing, :func:`load` → :class:`Model` on a backend chosen from :mod:`zoo.backends`.

Every runner takes the preprocessed float32 ``[1, 3, H, W]`` tensor and return the model's first output as it is:
int32/int64 class ids (``[N, H, W]`` or ``[N, 1, H, W]``) or float scores ``[N, C, H, W]``. :class:`Model` turns that
into an ``[H, W]`` label map at the image's own size. Input and output names are always read from the model: real
exports use ``x`` → ``argmax_0.tmp_0``, ``save_infer_model/scale_0.tmp_0`` or ``fetch_name_0``.

``--device gpu`` means the CUDA provider really runs the model, or a :class:`~zoo.errors.BackendError`: zoo never
falls back to the CPU silently.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from zoo.errors import BackendError, ImageError, ZooError
from zoo.util import first_line
from zoo.registry.spec import Architecture, Backend, InputSpec
from zoo.runners.tensors import output_to_labels, preprocess  # noqa: F401 - part of this module's API
from zoo.runners.choice import Selection, TunedWarning, choose  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    import numpy as np

    from zoo.registry.catalog import ModelHandle


class UntrainedWarning(UserWarning):
    """The model loaded has random weights (``zoo export --weights random``): fine for tests, its output is noise."""


class MetadataWarning(UserWarning):
    """A model file has no (or unreadable) zoo metadata, so defaults decide its preprocessing and classes."""


class Runner(Protocol):
    """What every backend's runner offers (see :class:`zoo.registry.spec.Backend`)."""

    def run(self, x: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


def __getattr__(name: str) -> Any:
    """The built-in runner classes, from their own modules (importing this module imports no engine)."""
    if name == "OnnxRunner":
        from zoo.runners.ort import OnnxRunner

        return OnnxRunner
    if name == "PaddleRunner":
        from zoo.runners.paddle import PaddleRunner

        return PaddleRunner
    raise AttributeError(f"module 'zoo.runners.runtime' has no attribute {name!r}")


# ---- the model a user holds -----------------------------------------------------------------------------------------


@dataclass
class Model:
    """A loaded model: preprocessing, a runner and the classes it predicts. ``predict`` is all most callers need."""

    name: str  # registry name, or the model file's name
    source: Path  # the .onnx file or Paddle model folder that runs
    runner: Runner  # the backend's runner: run(x) and describe()
    architecture: Architecture  # the plugin (or one built from ONNX metadata) with the input spec, labels, palette
    num_classes: int  # classes the model predicts
    backend: str  # the backend's name (what --backend took, else the default backend)
    precision: str = "fp32"  # the precision asked for
    device: str = "cpu"  # the device asked for (the runner fails rather than fall back)
    described: dict[str, Any] = field(default_factory=dict, repr=False)  # runner.describe() at load time
    selection: Selection | None = None  # how backend and precision were decided (flags, tuned choice, defaults)

    @property
    def arch(self) -> Architecture:
        return self.architecture

    @property
    def providers(self) -> list[str]:
        """What actually runs the model, as the runner says (execution providers, or the engine's own path)."""
        return list(self.described.get("providers") or [self.described.get("engine", self.backend)])

    @property
    def threads(self) -> int | None:
        return self.described.get("threads")

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
        """The runner's first output for one input tensor; a runner's own failure is a BackendError naming it."""
        try:
            return self.runner.run(x)
        except (ZooError, MemoryError):
            raise
        except Exception as exc:  # a third-party runner may raise anything
            raise BackendError(
                f"backend '{self.backend}' failed on an input of shape {list(getattr(x, 'shape', ()))}: "
                f"{type(exc).__name__}: {first_line(exc)}; try another --backend (see 'zoo plugins')"
            ) from exc

    def to_labels(self, output: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """First output → ``[H, W]`` class ids at ``size`` (H, W): uint8 when they fit, else int32."""
        from zoo.runners import deploy

        return output_to_labels(deploy.restore(output, self.architecture.input, size), size)

    def predict(self, x: Any, *, probabilities: bool = False) -> Any:
        """Segment an RGB uint8 ``[H, W, 3]`` array or an image path (→ one label map ``[H, W]``), or a list of
        either or an ``[N, H, W, 3]`` batch (→ a list). Each label map is a :class:`zoo.runners.prediction.Segmentation`:
        a numpy array of class ids with ``.labels``, ``.colorize()``, ``.overlay()``, ``.save(dir)`` and, with
        ``probabilities=True``, ``.probabilities`` ``[C, H, W]``."""
        from zoo.runners import prediction

        return prediction.predict(self, x, probabilities)

    __call__ = predict


def load(
    model: str | os.PathLike[str] | ModelHandle,
    *,
    backend: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    precision: str | None = None,
    options: dict[str, Any] | None = None,
) -> Model:
    """A runnable model from a handle or registry name (its cached model), an ``.onnx`` file or a model folder.

    Only opens: a registered model's artifact must be in the cache already (``zoo.make.ensure.prepare`` brings it;
    ``zoo.load`` and every command call that first), else NotCachedError says which command makes it.

    A registered model takes its preprocessing and classes from its architecture plugin; an ``.onnx`` file from zoo's
    ``zoo.*`` metadata when it has it, else PaddleSeg's defaults (with a warning). ``backend`` is any registered
    backend (``zoo plugins``); it decides which of the model's formats runs. ``backend`` and ``precision`` left None
    mean the model's tuned choice if any, else onnx/fp32 (:func:`choose`); ``options`` are runner options.
    """
    from zoo.registry import backends, catalog

    if isinstance(model, (str, os.PathLike)) and catalog.as_path(model) is None:
        model = catalog.resolve(str(model))
    chosen = choose(model, backend, precision, threads)
    if chosen.note:
        warnings.warn(chosen.note, TunedWarning, stacklevel=2)
    if options:
        chosen = replace(chosen, options={**chosen.options, **options})
    spec, precision, threads = backends.get(chosen.backend), chosen.precision, chosen.threads
    if device not in spec.devices:
        raise BackendError(f"unknown device '{device}' for backend '{spec.name}'; choose one of: {', '.join(spec.devices)}")
    if isinstance(model, catalog.ModelHandle):
        return _load_registered(model, spec, device, chosen)
    path = catalog.as_path(model)
    assert path is not None
    fmt = "paddle" if path.is_dir() else "onnx" if path.is_file() or path.suffix == ".onnx" else spec.formats[0]
    if fmt not in spec.formats:
        if fmt == "paddle":
            other = backends.for_format("paddle").name
            raise BackendError(f"{path} is a folder; run a Paddle model folder with --backend {other}, "
                               "or give an .onnx file")  # fmt: skip
        raise BackendError(f"{path} is a file; --backend {spec.name} runs a Paddle model folder (model.json|model.pdmodel)")
    runner = backends.open_runner(spec, path, device=device, threads=threads, precision=precision,
                                  options=chosen.options)  # fmt: skip
    meta = _onnx_metadata(runner, path) if fmt == "onnx" else _deploy_metadata(path)
    n = int(meta.get("num_classes") or 0)
    if n and not meta.get("labels") and not meta.get("architecture") and n != len(Architecture("", "").labels):
        meta["labels"] = tuple(f"class_{i}" for i in range(n))  # another dataset's names would be wrong: number them
        warnings.warn(f"{path} names no classes, so zoo numbers its {n} classes (class_0 ...); to name them, "
                      f"run 'zoo add NAME {path} --labels FILE' and use the name", MetadataWarning, stacklevel=2)  # fmt: skip
    arch = _architecture_from(meta, path)
    num_classes = int(meta.get("num_classes") or len(arch.labels))
    name = path.stem if path.is_file() else path.name
    return Model(name, path, runner, arch, num_classes, spec.name, precision, device, runner.describe(), chosen)


def model_file(model: ModelHandle, spec: Backend, precision: str = "fp32") -> Path:
    """The cached file (or folder) ``spec`` runs for ``model`` at ``precision``: the artifact kind the table
    (zoo/store/artifacts.py) names for them. Nothing is made here (zoo.make.ensure does that); a missing artifact is a
    NotCachedError naming the command that makes it.

    The files are re-hashed first: a cached file changed since it was written would give wrong masks silently; the
    advice is the command that remakes that very artifact.
    """
    from zoo.store import artifacts, cache, repair

    kind = artifacts.kind_for_backend(spec, precision)
    source = cache.artifact_path(model.name, kind.name)
    folder, names = (source, [cache.program_file(source).name, cache.PARAMS_FILE]) if source.is_dir() else (
        source.parent, [source.name])  # fmt: skip
    cache.verify_files(folder, names, fix=repair.advice(model.name, kind.name))
    return source


def _load_registered(model: ModelHandle, spec: Backend, device: str, chosen: Selection) -> Model:
    from zoo.registry import backends

    precision, threads = chosen.precision, chosen.threads
    source = model_file(model, spec, precision)
    runner = backends.open_runner(spec, source, device=device, threads=threads, precision=precision,
                                  options=chosen.options)  # fmt: skip
    from zoo.store import cache

    if (cache.get_ref(model.name).get("paddle") or {}).get("weights") == "random":
        import warnings

        warnings.warn(UntrainedWarning(f"{model.name} is an untrained export (random weights): its label maps are "
                                       f"noise; for trained weights run 'zoo pull {model.name} --force' or "
                                       f"'zoo export {model.name} --weights FILE'"), stacklevel=3)  # fmt: skip
    return Model(model.name, source, runner, model.architecture, model.num_classes, spec.name, precision, device,
                 runner.describe(), chosen)  # fmt: skip


def _onnx_metadata(runner: Any, path: Path) -> dict[str, Any]:
    """zoo's ``zoo.*`` metadata_props (read by an ORT session already, else from the file) → architecture, input, ...
    checked by :func:`zoo.registry.described.checked` (a wrong type or size is a ConversionError naming the key)."""
    from zoo.registry import described
    from zoo.formats.onnx_meta import decode_metadata, read_metadata

    try:
        props = getattr(runner, "metadata", None)
        raw = decode_metadata(props) if isinstance(props, dict) else read_metadata(path)
    except (ValueError, RecursionError) as exc:  # a value that is not JSON, or JSON nested 100,000 deep
        raw = {"metadata": exc}
    return described.checked(raw, path)


def _deploy_metadata(folder: Path) -> dict[str, Any]:
    """What a Paddle model folder's deploy.yaml says about preprocessing (zoo's ``input``, or PaddleSeg's Normalize)."""
    from zoo.formats import program
    from zoo.runners import deploy
    from zoo.store import cache

    try:
        doc = deploy.load(folder)
        signature = program.signature(cache.program_file(folder))
    except (ZooError, OSError) as exc:
        warnings.warn(f"{folder}: ignoring unreadable deploy.yaml or program ({exc})", MetadataWarning, stacklevel=3)
        return {}
    meta: dict[str, Any] = {"input": deploy.input_spec(doc, signature, str(folder / "deploy.yaml"))} if doc else {}
    if signature.num_classes:
        meta["num_classes"] = signature.num_classes
    return meta


def _architecture_from(meta: dict[str, Any], path: Path) -> Architecture:
    """The Architecture a model file describes: its plugin updated by the metadata, or one made from the metadata."""
    from zoo.registry import plugins
    from zoo.errors import PluginError

    if not meta.get("architecture") and not meta.get("labels"):
        defaults = ["Cityscapes class names and colours"]
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
