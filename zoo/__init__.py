"""zoo: a model-zoo manager for PaddleSeg segmentation models.

Public API (everything else is internal)::

    zoo.list_models()        -> list[ModelEntry]     every merged registry entry
    zoo.get("fcn")           -> ModelEntry           one entry (UnknownModelError if absent)
    zoo.list_plugins()       -> list[Plugin]         discovered architecture plugins, loaded or broken
    zoo.list_backends()      -> list[BackendPlugin]  discovered backend plugins, usable, unavailable or broken
    zoo.architecture("fcn")  -> Architecture         a loaded plugin's spec
    zoo.resolve("fcn")       -> ModelHandle          a name resolved once: entry, architecture, cache refs
    zoo.load("fcn")          -> Model                a cached model ready to run: .predict(rgb) -> label map
    zoo.verify_model("fcn")  -> VerifyResult         Paddle Inference vs ONNX Runtime (or any two backends)
    zoo.evaluate("fcn", "cityscapes/") -> EvalResult PaddleSeg's mIoU & co. on labelled data, per backend
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.registry.spec import Architecture, Backend, InputSpec

# paddle warns at import that it found no ccache (a C++ extension build tool zoo never uses): noise in every program
# that verifies or exports through zoo
warnings.filterwarnings("ignore", message="No ccache found")

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle
    from zoo.registry.entries import Artifact, ModelEntry


def __getattr__(name: str) -> Any:
    """``__version__``, ``Artifact`` and ``ModelEntry`` on first use: ``zoo --help`` needs none of them."""
    if name == "__version__":
        from zoo.util import version

        return version()
    if name in ("Artifact", "ModelEntry"):
        from zoo.registry import entries as registry

        return getattr(registry, name)
    if name == "ModelHandle":
        from zoo.registry import catalog

        return catalog.ModelHandle
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")

__all__ = [
    "Architecture",
    "Artifact",
    "Backend",
    "InputSpec",
    "ModelEntry",
    "ModelHandle",
    "ZooError",
    "__version__",
    "architecture",
    "evaluate",
    "get",
    "list_backends",
    "list_models",
    "list_plugins",
    "load",
    "resolve",
    "verify_model",
]


def list_models() -> list[ModelEntry]:
    """Every model of the merged registries, sorted by name."""
    from zoo.registry import catalog

    return sorted(catalog.current().models.values(), key=lambda e: e.name)


def get(name: str) -> ModelEntry:
    """The registry entry ``name`` (frozen)."""
    entry = resolve(name).entry
    assert entry is not None  # a registered name always has one
    return entry


def resolve(name: str) -> ModelHandle:
    """``name`` resolved once: its registry entry, architecture and cache refs (pass it to load, verify_model)."""
    from zoo.registry import catalog

    return catalog.resolve(name)


def list_backends():
    """Every discovered backend plugin: usable, unavailable (a module it needs is missing) or broken."""
    from zoo.registry import backends

    return backends.discover()


def list_plugins():
    """Every discovered plugin, loaded or broken."""
    from zoo.registry import plugins as _plugins

    return _plugins.discover()


def architecture(name: str) -> Architecture:
    """The loaded architecture plugin ``name``."""
    from zoo.registry import plugins as _plugins

    return _plugins.get_architecture(name)


def load(model: Any, *, backend: str | None = None, device: str = "cpu", threads: int | None = None,
         precision: str | None = None, options: dict[str, Any] | None = None):  # fmt: skip
    """A registered model (name or handle; pulled and converted first when missing), a .onnx file or a Paddle model
    folder, ready to ``predict(rgb)``. Without ``backend`` and ``precision``: the model's tuned choice (``zoo tune``)
    when valid here, else the default backend (``zoo plugins``) in fp32. ``options``: the backend runner's own
    settings (ONNX Runtime's ``allow_spinning``, OpenVINO's ``f32_layers``)."""
    from zoo.make import ensure
    from zoo.runners import runtime

    chosen = runtime.choose(model, backend, precision)  # the tuned choice when no flag says otherwise
    target = ensure.prepare(model, chosen.backend, chosen.precision)  # the one door: ZOO_OFFLINE=1 refuses a download
    return runtime.load(target, backend=backend, device=device, threads=threads, precision=precision,
                        options=options)  # fmt: skip


def verify_model(name: Any, **kwargs):
    """Run two backends (default Paddle Inference and ONNX Runtime) on the same inputs and compare
    (see ``zoo.measure.verify.verify_model``)."""
    from zoo.make import ensure
    from zoo.measure import verify
    from zoo.registry import backends

    if kwargs.get("convert", True):  # the one door: what both sides run is pulled and converted first when missing
        pair = kwargs.get("backends") or backends.default_pair()
        for backend, precision in zip(pair, ("fp32", kwargs.get("precision", "fp32"))):
            name = ensure.prepare(name, backend, precision)
    return verify.verify_model(name, **kwargs)


def evaluate(model, data, *, backends=None, **kwargs):
    """Score a model on labelled data on each backend (None: the default backend), as PaddleSeg does (see
    ``zoo.measure.evaluation.evaluate``)."""
    from zoo.make import ensure
    from zoo.measure import evaluation

    backends = (None,) if backends is None else backends
    if isinstance(model, (str, os.PathLike)):  # the one door: what each backend runs, pulled and converted first
        for backend in backends:
            for precision in kwargs.get("precisions", ("fp32",)):
                ensure.prepare(model, backend, precision)
    return evaluation.evaluate(model, data, backends=backends, **kwargs)
