"""The one door to "make sure it is cached": :func:`ensure` walks the artifact table's chain (zoo/store/artifacts.py).

``ensure(handle, "onnx")`` on an empty cache pulls the Paddle model (``zoo pull``: the inference archive, or an export
of the published weights when the archive is gone), then converts it (``zoo convert``), saying so as it goes. A model
whose entry publishes only an ONNX file has it pulled instead. A kind that changes a model's answers (int8, fp16) is
made only by its own command (``zoo quantize``); a missing one is an error naming that command. ``--offline`` and
``ZOO_OFFLINE=1`` are refused here and only here: the error names the one ``zoo pull`` that gets the model, written
so that it works when run next. Every command and the Python API come through here before they open a model
(``zoo.runners.runtime.load`` only opens what is cached).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import NotCachedError
from zoo.store import artifacts, cache

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle

Progress = Callable[[str], None]


def command(args: str, *, env: str = "") -> str:
    """A zoo command line to advise: ``--registry FILE`` for each registry the current command was given."""
    from zoo.registry import catalog

    extra = "".join(f"--registry {shlex.quote(str(p))} " for p in catalog.extra_registries())
    return f"{env}zoo {extra}{args}"


def ensure(model: ModelHandle | str, kind: str = "onnx", *, fetch: bool = True, progress: Progress | None = None) -> Path:
    """``model``'s ``kind`` in the cache (the Paddle model's folder, a variant's file), made from its parents first
    when missing. ``fetch=False`` (``--offline``) or ``ZOO_OFFLINE=1``: a needed download is a NotCachedError."""
    from zoo.registry import catalog

    handle = catalog.handle(model)
    wanted = artifacts.get(kind)
    try:
        return cache.artifact_path(handle.name, wanted.name)
    except NotCachedError:
        pass
    say = progress or _stderr
    if wanted.derives_from is None:
        _pull(handle, wanted.name, fetch, say)
    elif not wanted.automatic:
        raise NotCachedError(
            f"model '{handle.name}' has no {wanted.name} model in the cache, and zoo makes it only when asked (it "
            f"changes the answers); run '{command(wanted.make_args(handle.name))}'"
        )
    elif _published_instead(handle, wanted):
        _pull(handle, wanted.name, fetch, say)
    else:
        ensure(handle, wanted.derives_from, fetch=fetch, progress=progress)
        MAKERS[wanted.command](handle, wanted, say)
    return cache.artifact_path(handle.name, wanted.name)


def prepare(model: Any, backend: str | None, precision: str = "fp32", *, fetch: bool = True,
            progress: Progress | None = None) -> Any:  # fmt: skip
    """What a backend runs at ``precision``, made sure of: a registry name becomes its handle (resolved once) with
    the artifact in the cache; a path (or anything not a registry name) is returned as it is."""
    from zoo.registry import backends, catalog

    spec = backends.get(backend) if backend else backends.default_backend()  # None: what runs unnamed
    kind = artifacts.kind_for_backend(spec, precision)  # an impossible precision is refused before any download
    target = catalog.resolve_target(model)
    if isinstance(target, catalog.ModelHandle):
        ensure(target, kind.name, fetch=fetch, progress=progress)
    return target


# ---- the makers, by the command the table names ---------------------------------------------------------------------


def variant(handle: ModelHandle, precision: str, size: tuple[int, int], calib_synthetic: int) -> None:
    """The ``onnx-<precision>`` variant ``zoo tune`` measures, made (calibrated on ``calib_synthetic`` seeded scenes
    of ``size``) if it is missing or derives from an older Paddle model than the cached one."""
    import warnings

    from zoo.make.quantize import quantize_model

    record = cache.variants(handle.name).get(cache.variant_for(precision))
    paddle_key = (cache.get_ref(handle.name).get("paddle") or {}).get("key")
    if record is not None and record.get("derived_from") in (None, paddle_key):
        try:
            cache.variant_path(handle.name, cache.variant_for(precision))
            return
        except NotCachedError:
            pass
    with warnings.catch_warnings():  # onnxconverter's per-constant truncation notes would bury the progress lines
        warnings.simplefilter("ignore")
        quantize_model(handle, cache.variant_path(handle.name), precision=precision, calib_synthetic=calib_synthetic,
                       size=size)  # fmt: skip


def _pull(handle: ModelHandle, kind: str, fetch: bool, say: Progress) -> None:
    """``zoo pull`` the Paddle model (or the published ``kind``), unless downloading is forbidden."""
    from zoo import config
    from zoo.make import pull

    name = handle.name
    entry = handle.entry
    if entry is None or not entry.artifacts:
        raise NotCachedError(f"model '{name}' is in no registry that says where to get it; "
                             "run 'zoo list' to see the models that can be pulled")  # fmt: skip
    fmt = "paddle" if kind == artifacts.ROOT else kind
    args = f"pull {name}" + ("" if fmt == "paddle" else f" --format {fmt}")
    if not fetch or config.offline():
        why, env = ("--offline", "") if not fetch else ("ZOO_OFFLINE=1", "ZOO_OFFLINE=0 ")
        raise NotCachedError(
            f"model '{name}' is not in the cache ({cache.root()}) and {why} forbids downloading it; "
            f"run '{command(args, env=env)}', then this command again"
        )
    say(f"{name}: not in the cache yet; pulling it ('{command(args)}')")
    pull.pull(handle, fmt=fmt)


def _published_instead(handle: ModelHandle, kind: artifacts.Kind) -> bool:
    """Whether ``kind`` is to be pulled as published, its parent being neither cached nor published."""
    from zoo.make.pull import SOURCES

    artifacts_ = handle.entry.artifacts if handle.entry is not None else {}
    if kind.name not in artifacts_ or kind.derives_from is None:
        return False
    parent_cached = kind.derives_from in cache.cached_formats(handle.name)
    return not parent_cached and not any(source in artifacts_ for source in SOURCES)


def _convert(handle: ModelHandle, kind: artifacts.Kind, say: Progress) -> None:
    from zoo.make import convert

    say(f"{handle.name}: converting it to ONNX ('{command(kind.make_args(handle.name))}') ...")
    result = convert.convert(handle, **_keywords(kind.settings))
    say(f"{handle.name}: converted in {result.seconds:.1f} s, {result.path}")


def _quantize(handle: ModelHandle, kind: artifacts.Kind, say: Progress) -> None:
    from zoo.make import quantize

    say(f"{handle.name}: making its {kind.name} variant ('{command(kind.make_args(handle.name))}') ...")
    precision = kind.args[kind.args.index("--precision") + 1]
    source = cache.artifact_path(handle.name, kind.derives_from or artifacts.ROOT)  # ensure() made it just now
    result = quantize.quantize_model(handle, source, precision=precision, **_keywords(kind.settings))
    say(f"{handle.name}: {kind.name} made in {result['seconds']:.1f} s, {result['path']}")


def _keywords(settings: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """The table's CLI-style settings (``--calib-synthetic``) as the library function's keywords (``calib_synthetic``)."""
    return {option.lstrip("-").replace("-", "_"): value for option, value in settings}


MAKERS: dict[str, Callable[[ModelHandle, artifacts.Kind, Progress], None]] = {
    "convert": _convert,  # pull is not here: the root kind is fetched, above
    "quantize": _quantize,
}


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
