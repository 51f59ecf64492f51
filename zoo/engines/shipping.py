"""A model verified on the driver and shipped to Ray workers by reference, re-hashed there before it opens.

The driver opens the model as ``zoo run`` does (the cache manifest's sha256 checked), then ships its one file — its
bytes in Ray's object store (default) or a path on a shared filesystem — with that sha256. A worker re-hashes what it
received right before its session opens and refuses a mismatch; it never downloads or converts. Any backend whose
model is one file can be shipped (the backend and precision come from the caller, the default from the backend
registry); a backend that runs a model folder is refused by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.engines.ray_cluster import SHIP, private_folder
from zoo.errors import BackendError, EngineError, IntegrityError

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle
    from zoo.registry.spec import Architecture
    from zoo.runners.runtime import Model


@dataclass(frozen=True)
class ShippedModel:
    """A model verified on the driver, as workers receive it: where it is, what it must hash to, how to run it."""

    name: str  # registry name or file name (as zoo run's JSON reports it)
    source: str  # the driver's path of the model file (reported as model_path)
    sha256: str  # 'sha256:<hex>' from the cache manifest (or the driver's hash of a bare model file)
    size: int  # bytes
    architecture: Architecture  # preprocessing, labels, palette
    num_classes: int  # classes the model predicts
    device: str = "cpu"  # what each worker's session runs on
    threads: int = 1  # intra-op threads per worker
    blob: Any = None  # ray.ObjectRef of the file's bytes, or None: workers read `source` (a shared filesystem)
    backend: str = ""  # the registered backend that runs it (a Backend spec's name)
    precision: str = "fp32"  # the precision asked for
    providers: tuple[str, ...] = ()  # what ran it on the driver's check; a worker's own Model says what ran there
    selection: Any = None  # the driver's zoo.runners.choice.Selection (flags or tuned choice, its runner options)

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names; index = class id (``class_<i>`` past the plugin's list), as a loaded Model names them."""
        names = tuple(self.architecture.labels)
        return names + tuple(f"class_{i}" for i in range(len(names), self.num_classes))

    def open(self) -> Model:
        """On a worker: fetch and re-hash the model, then open its session. IntegrityError if it does not match."""
        from zoo.registry import backends
        from zoo.runners.runtime import Model
        from zoo.store import cache

        if self.blob is None:
            local = Path(self.source)
            if not local.is_file():
                raise BackendError(f"{local}: the model file is not on this worker; share it, or ship it with "
                                   "the object store (ship='object')")  # fmt: skip
        else:
            import ray

            data = ray.get(self.blob)
            got = cache.sha256_bytes(data)
            if got != self.sha256:
                raise IntegrityError(f"{self.name}: the model bytes this worker received hash to {got}, expected "
                                     f"{self.sha256}; refused — run again, or 'zoo verify {self.name}'")  # fmt: skip
            local = node_copy(data, self.sha256, Path(self.source).suffix)
        got = cache.sha256_file(local)  # the file the session opens, hashed right before it opens
        if got != self.sha256:
            fix = f"run 'zoo convert {self.name} --force' (or 'zoo verify {self.name}')" if self.blob is None else \
                "run again"
            raise IntegrityError(f"{local} on this worker is corrupt: expected {self.sha256}, got {got}; refused — "
                                 f"{fix}")  # fmt: skip
        spec = backends.get(self.backend)
        selection = replace(self.selection, threads=self.threads) if self.selection is not None else None
        runner = backends.open_runner(spec, local, device=self.device, threads=self.threads, precision=self.precision,
                                      options=selection.options if selection is not None else None)  # fmt: skip
        return Model(self.name, Path(self.source), runner, self.architecture, self.num_classes, spec.name,
                     self.precision, self.device, runner.describe(), selection)  # fmt: skip


def node_copy(data: bytes, sha256: str, suffix: str) -> Path:
    """The shipped model as a file on this node (one per content hash, written atomically, shared by its actors)."""
    from zoo.store import cache

    path = private_folder("models") / f"{cache.hex_of(sha256)}{suffix}"
    if not path.is_file() or cache.sha256_file(path) != sha256:  # absent, or damaged since an earlier run wrote it
        cache.atomic_write(path, data)
    return path


def default_backend() -> str:
    """The backend the Ray engine runs when none is named: the one the backend specs mark default, as locally."""
    from zoo.registry import backends

    return backends.default_backend().name


def resolve_model(model: str | os.PathLike[str] | ModelHandle, *, backend: str | None = None, precision: str = "fp32",
                  device: str = "cpu", threads: int = 1, ship: str = "object",
                  chosen: Any = None) -> ShippedModel:  # fmt: skip
    """Resolve and verify a model on the driver (as ``zoo run`` loads it) into a handle for the workers.

    ``chosen``: the driver's :class:`zoo.runners.choice.Selection` when ``zoo tune``'s choice decided the backend and
    precision; its runner options go to the workers with it (its thread count does not: ``threads`` is the layout's).

    ``ship="object"`` puts the file's bytes into Ray's object store (Ray must be initialised); ``"path"`` sends only
    the path, for clusters whose nodes share the filesystem.
    """
    from zoo.registry import backends
    from zoo.runners import runtime
    from zoo.store import cache

    if ship not in SHIP:
        raise EngineError(f"unknown ship mode '{ship}'; choose one of: {', '.join(SHIP)}")
    spec = backends.get(backend or default_backend())
    if device not in spec.devices:
        raise BackendError(f"unknown device '{device}' for backend '{spec.name}'; choose one of: "
                           f"{', '.join(spec.devices)}")  # fmt: skip
    # the driver only verifies and reads metadata (on its CPU when the backend has one); the workers run on `device`
    here = "cpu" if "cpu" in spec.devices else device
    # only opens (the callers bring the model into the cache through zoo.make.ensure, the one door)
    from zoo.registry import catalog

    tuned = chosen if chosen is not None and chosen.tuned else None
    loaded = runtime.load(catalog.resolve_target(model), backend=spec.name, device=here, threads=1, precision=precision,
                          options=tuned.options if tuned else None)  # fmt: skip
    source = Path(loaded.source)
    if not source.is_file():
        raise EngineError(f"--engine ray ships one model file to its workers, but backend '{spec.name}' runs the "
                          f"folder {source}; use --engine local, or a backend that runs a file (see 'zoo plugins')")
    expected = None
    if (source.parent / cache.MANIFEST).is_file():  # a cache entry: runtime.load has just checked it against this
        expected = cache.read_manifest(source.parent).get("files", {}).get(source.name, {}).get("sha256")
    expected = expected or cache.sha256_file(source)
    blob = None
    if ship == "object":
        import ray

        data = source.read_bytes()
        if cache.sha256_bytes(data) != expected:  # changed since it was verified
            raise IntegrityError(f"{source} changed while zoo was reading it: expected {expected}; run again")
        blob = ray.put(data)
    return ShippedModel(loaded.name, str(source), expected, source.stat().st_size, loaded.architecture,
                        loaded.num_classes, device, int(threads), blob, spec.name, precision,
                        tuple(loaded.providers), tuned or loaded.selection)  # fmt: skip
