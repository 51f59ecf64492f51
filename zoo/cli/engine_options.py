"""``--engine local|ray`` and the flags only one engine honours, shared by ``zoo run`` and ``zoo eval``.

Every other option means the same on both engines. A flag the chosen engine cannot honour is refused by name, with
the flag that does the job there; it is never ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from zoo.errors import EngineError

ENGINES = ("local", "ray")
LOCAL_ONLY = {"--threads": "on Ray, --threads-per-worker sets each worker's threads"}

EngineFlag = Annotated[str, typer.Option("--engine", metavar="local|ray", help="local, or ray: Ray Data workers (zoo[ray]).")]
AddressFlag = Annotated[Optional[str], typer.Option(  # noqa: UP007 - typer needs Optional here
    "--address", help="ray: 'auto' or ray://HOST:PORT (default: start a local Ray).")]
WorkersFlag = Annotated[Optional[int], typer.Option(  # noqa: UP007
    "--workers", min=1, help="ray: worker actors, each with its own session (default 2).")]
BatchSizeFlag = Annotated[Optional[int], typer.Option(  # noqa: UP007
    "--batch-size", min=1, help="ray: images per batch sent to a worker (default 8).")]
ThreadsPerWorkerFlag = Annotated[Optional[int], typer.Option(  # noqa: UP007
    "--threads-per-worker", min=1, help="ray: inference threads (and CPUs) per worker (default 1).")]

def ray_options(engine: str, *, address: str | None, workers: int | None, batch_size: int | None,
                threads_per_worker: int | None, threads: int | None) -> Any:  # fmt: skip
    """The RayOptions for ``--engine ray`` (None for local), after refusing the flags the engine cannot honour."""
    if engine not in ENGINES:
        raise typer.BadParameter(f"choose {' or '.join(ENGINES)}, got {engine!r}", param_hint="--engine")
    ray_flags = {"--address": address, "--workers": workers, "--batch-size": batch_size,
                 "--threads-per-worker": threads_per_worker}  # fmt: skip
    if engine == "local":
        given = [flag for flag, value in ray_flags.items() if value is not None]
        if given:
            raise EngineError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for --engine ray; add "
                              f"--engine ray, or drop {'it' if len(given) == 1 else 'them'}")  # fmt: skip
        return None
    if threads is not None:
        raise EngineError(f"--threads is for --engine local; {LOCAL_ONLY['--threads']}")
    from zoo.engines.ray_cluster import RayOptions, require_ray

    require_ray()  # a missing Ray is said before the model is looked up or brought into the cache
    defaults = RayOptions()
    return RayOptions(address, workers or defaults.workers, batch_size or defaults.batch_size,
                      threads_per_worker or defaults.threads_per_worker)  # fmt: skip


def start_ray(ray: Any) -> None:
    """Join or start Ray for ``--engine ray`` (its RayOptions checked first), a spinner saying so on a terminal: a local
    Ray takes several seconds to start, and its own start-up lines are kept off the terminal."""
    from zoo import progress
    from zoo.engines import ray_cluster

    ray.check()
    with progress.spinner(f"joining Ray at {ray.address}" if ray.address else "starting a local Ray"):
        ray_cluster.connect(ray.address)
