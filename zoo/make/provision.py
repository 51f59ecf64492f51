"""What a run needs, brought into the cache on demand.

:func:`ensure` brings into the cache what a run of a registered model needs — ``zoo pull`` the Paddle model,
  ``zoo convert`` it to ONNX — saying so as it goes, unless fetching is off; then the error names the one command that
  gets the model, written so that it works when run next.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from zoo.store import cache
from zoo.errors import NotCachedError

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle

# ---- what a run needs -----------------------------------------------------------------------------------------------


def command(args: str, *, env: str = "") -> str:
    """A zoo command line to advise: ``--registry FILE`` for each registry the current command was given."""
    from zoo.registry import catalog

    extra = "".join(f"--registry {shlex.quote(str(p))} " for p in catalog.extra_registries())
    return f"{env}zoo {extra}{args}"


def ensure(
    model: ModelHandle,
    *,
    formats: tuple[str, ...] = ("onnx",),
    fetch: bool = True,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Bring what a backend running ``formats`` needs for ``model`` into the cache: pull the Paddle model, convert it.

    Nothing happens when it is cached. With ``fetch=False`` (``--offline``) or ``ZOO_OFFLINE=1``, a model that must
    be downloaded is a NotCachedError whose advice is the ``zoo pull`` command to run; converting needs no network
    and still happens.
    """
    from zoo import config

    name = model.name
    wants_onnx = "onnx" in formats
    cached = cache.cached_formats(name)
    if (wants_onnx and "onnx" in cached) or (not wants_onnx and "paddle" in cached):
        return
    say = progress or _stderr
    if "paddle" not in cached:
        entry = model.entry
        if entry is None or not entry.artifacts:
            raise NotCachedError(f"model '{name}' is in no registry that says where to get it; "
                                 "run 'zoo list' to see the models that can be pulled")  # fmt: skip
        publishes_paddle = any(kind in entry.artifacts for kind in ("inference", "weights"))
        fmt = "paddle" if publishes_paddle or not wants_onnx else "onnx"
        pull_args = f"pull {name}" + ("" if fmt == "paddle" else " --format onnx")
        if not fetch or config.offline():
            why, env = ("--offline", "") if not fetch else ("ZOO_OFFLINE=1", "ZOO_OFFLINE=0 ")
            raise NotCachedError(
                f"model '{name}' is not in the cache ({cache.root()}) and {why} forbids downloading it; "
                f"run '{command(pull_args, env=env)}', then this command again"
            )
        from zoo.make import pull

        say(f"{name}: not in the cache yet; pulling it ('{command(pull_args)}')")
        pull.pull(model, fmt=fmt)
        if fmt == "onnx" or not wants_onnx:
            return
    from zoo.make import convert

    say(f"{name}: converting it to ONNX ('{command(f'convert {name}')}') ...")
    result = convert.convert(model)
    say(f"{name}: converted in {result.seconds:.1f} s, {result.path}")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
