"""Joining or starting Ray for zoo's Ray engine, and what every Ray job of zoo's shares.

Two things Ray does by default that zoo undoes:

* Ray puts the driver's working directory on every worker's ``sys.path``, ahead of site-packages. Started from a
  folder that holds a checkout named ``zoo`` (``zoo/plugins/``, ``zoo/zoo/``), the workers would import that folder as
  the package (``cannot import name ... from 'zoo.plugins' (unknown location)``). zoo therefore starts or joins Ray
  from a private empty folder, which is what the job records as the driver's folder, and each actor changes into the
  driver's real working directory (:func:`enter`) once zoo is imported, so relative paths mean what they mean here.
* Ray's C++ core log lines and its Python warnings would reach the user's terminal between zoo's own lines. They are
  kept (``RAY_BACKEND_LOG_LEVEL``, ``log_to_driver``, Python warnings) only under ``ZOO_DEBUG=1``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.engines.sources import INSTALL
from zoo.errors import EngineError, ZooError

if TYPE_CHECKING:
    import ray.data

SHIP = ("object", "path")  # how the model reaches the workers: Ray's object store, or a path on a shared filesystem


@dataclass(frozen=True)
class RayOptions:
    """How a Ray job of zoo's runs: the cluster, its actors and how the model travels (the CLI's ray flags)."""

    address: str | None = None  # "auto", "ray://HOST:PORT", a GCS address; None starts a local Ray
    workers: int = 2  # actors, each with its own model session
    batch_size: int = 8  # images per batch sent to an actor
    threads_per_worker: int = 1  # intra-op threads (and CPUs reserved) per actor
    ship: str = "object"  # one of SHIP

    def check(self) -> None:
        for flag, value in (("--workers", self.workers), ("--batch-size", self.batch_size),
                            ("--threads-per-worker", self.threads_per_worker)):  # fmt: skip
            if value < 1:
                raise EngineError(f"{flag} must be at least 1, got {value}")
        if self.ship not in SHIP:
            raise EngineError(f"unknown ship mode '{self.ship}'; choose one of: {', '.join(SHIP)}")


def private_folder(name: str) -> Path:
    """``<tmp>/zoo-ray-<uid>/<name>``, this user's own (0700): node-local copies of models, the neutral start folder."""
    root = Path(tempfile.gettempdir()) / f"zoo-ray-{os.getuid()}"
    path = root / name
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if root.stat().st_uid != os.getuid():  # someone else's folder in a shared /tmp: not ours to trust
        raise EngineError(f"{root} belongs to another user; remove it or set TMPDIR to a folder of your own")
    return path


def require_ray() -> Any:
    """The ray module, or an EngineError with the install command (checked before any slower work)."""
    try:
        import ray
    except ImportError:
        raise EngineError(f"--engine ray needs Ray, which is not installed; run: {INSTALL}") from None
    return ray


def connect(address: str | None = None) -> bool:
    """Join (``address``: "auto", "ray://HOST:PORT") or start a local Ray; True if this call started it."""
    from zoo import config

    ray = require_ray()
    if ray.is_initialized():
        return False
    debug = config.debug()
    if not debug:  # read by Ray's C++ core when it starts (this process's and the local cluster's)
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    here = os.getcwd()
    os.chdir(private_folder("driver"))  # what Ray records as the driver's folder and puts on the workers' sys.path
    try:
        with quiet(), contextlib.nullcontext() if debug else stderr_to_devnull():
            ray.init(address=address, include_dashboard=False, logging_level="DEBUG" if debug else "ERROR",
                     log_to_driver=debug)  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local cluster"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EngineError(f"cannot connect to Ray at {where}: {first}; start it with 'ray start --head', "
                          "or leave out --address for a local one") from None  # fmt: skip
    finally:
        os.chdir(here)
    quiet_data()
    return True


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
    """File descriptor 2 to /dev/null while Ray starts: its C++ core announces its log settings there, and the local
    cluster's processes it spawns inherit a quiet stderr (they keep their own log files under /tmp/ray)."""
    import sys

    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def disconnect() -> None:
    """Leave Ray (and stop the local one this process started) while stdout still goes where the caller sent it:
    the CLI calls it before printing --json, so nothing of Ray's background threads can follow the JSON."""
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        with quiet(), stderr_to_devnull():
            ray.shutdown()


def enter(cwd: str) -> None:
    """On an actor: work in the driver's folder when this node has it (relative inputs and --out then resolve as on
    the driver); zoo itself is imported by now, from the installed package."""
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Ray's own Python warnings (ray.*) hidden while a job runs, unless ZOO_DEBUG=1; zoo's and others' pass."""
    import warnings

    from zoo import config

    with warnings.catch_warnings():
        if not config.debug():
            warnings.filterwarnings("ignore", module=r"ray(\.|$)")
        yield


def quiet_data() -> None:
    """zoo prints its own progress and errors on the driver; Ray Data's bars and log lines would repeat them."""
    import logging

    import ray.data

    from zoo import config

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    if not config.debug():
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def resources(device: str, threads: int) -> dict[str, float]:
    """What one actor reserves: its session's threads as CPUs (so Ray never oversubscribes a node), and a GPU."""
    import ray

    if device == "gpu" and ray.cluster_resources().get("GPU", 0) < 1:  # the actors would wait forever
        raise EngineError("--device gpu: the Ray cluster has no GPU ('ray status' lists its resources); "
                          "add GPU nodes, or run with --device cpu")  # fmt: skip
    return {"num_cpus": threads, **({"num_gpus": 1} if device == "gpu" else {})}


def blocks(rows: int, options: RayOptions) -> tuple[int, int]:
    """(blocks, actors) for ``rows`` items: about one block per batch, at least one per actor; no idle actors."""
    count = max(1, min(rows, max(-(-rows // options.batch_size), options.workers)))
    return count, max(1, min(options.workers, count))


def dataset(handle: Any, rows: list[dict[str, Any]], worker: type, kwargs: dict[str, Any],
            options: RayOptions) -> ray.data.Dataset:  # fmt: skip
    """``rows`` mapped in batches by a pool of ``worker`` actors (``worker(**kwargs)``, each in the driver's folder),
    each actor holding what ``handle`` (a :class:`zoo.engines.shipping.ShippedModel`) asks: its device and threads."""
    import ray.data

    quiet_data()
    count, actors = blocks(len(rows), options)
    ds = ray.data.from_items(rows, override_num_blocks=count)
    return ds.map_batches(
        worker,
        fn_constructor_kwargs={**kwargs, "cwd": os.getcwd()},
        batch_size=options.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        **resources(handle.device, handle.threads),
    )


def zoo_error(exc: BaseException) -> BaseException:
    """The ZooError a worker raised (Ray wraps it in RayTaskError/UserCodeException chains), else an EngineError."""
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ZooError):
            return e
        cause = getattr(e, "cause", None)
        stack += [e.__cause__, e.__context__] + ([cause] if isinstance(cause, BaseException) else [])
    from zoo import errors

    # an actor's failed __init__ reaches the driver as ActorDiedError, which keeps only the traceback's text
    for line in reversed(str(exc).splitlines()):
        found = re.match(r"\s*zoo\.errors\.(\w+): (.+)$", re.sub(r"\x1b\[[0-9;]*m", "", line))
        cls = getattr(errors, found.group(1), None) if found else None
        if isinstance(cls, type) and issubclass(cls, ZooError) and cls is not errors.RegistryError:
            return cls(found.group(2))  # type: ignore[union-attr]
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return EngineError(f"the Ray job failed: {first}; rerun with ZOO_DEBUG=1 for the workers' traceback")


class Meter:
    """Progress of a Ray job on the driver: on a terminal a k/N bar (zoo.progress, as the local engine's); the
    images/s line at the end, and off a terminal also at most every few seconds."""

    def __init__(self, total: int, emit: Callable[[str], None] | None, every: float = 5.0, desc: str = "segmenting"):
        from zoo import progress

        self.total, self.emit, self.every = total, emit, every
        self.done = 0
        self.started = self.last = time.perf_counter()
        self.bar = progress.counter(total, desc, "images") if emit is not None else progress.Quiet(total)
        self.drawn = not isinstance(self.bar, progress.Quiet)  # the bar shows the count: no periodic lines

    def tick(self) -> None:
        self.done += 1
        self.bar.update(1)
        now = time.perf_counter()
        due = now - self.last >= self.every and not self.drawn
        if self.emit is not None and (due or self.done == self.total):
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            self.emit(f"{self.done}/{self.total} images, {rate:.1f} images/s")

    def close(self) -> None:
        self.bar.close()
