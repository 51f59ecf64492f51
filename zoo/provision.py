"""A model name when the registry alone is not enough: cached models without their registry, and what a run needs.

* A model in the cache stays usable by name after the registry file that named it is gone (a demo's, a colleague's,
  a bundle's): ``zoo pull`` records the registry entry in each record of the model's ref (``refs/<name>.json``, key
  ``entry``), and :func:`cached_entry` rebuilds the entry from it — or, for models cached before that, from the
  export's provenance or the converted ONNX file's ``zoo.*`` metadata.
* :func:`ensure` brings into the cache what a run of a registered model needs — ``zoo pull`` the Paddle model,
  ``zoo convert`` it to ONNX — saying so as it goes, unless fetching is off; then the error names the one command that
  gets the model, written so that it works when run next.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import cache
from zoo.errors import NotCachedError
from zoo.util import MODEL_NAME
from zoo.registry import Artifact, ModelEntry

if TYPE_CHECKING:
    from zoo.catalog import ModelHandle

ENTRY = "entry"  # key of the registry entry inside a ref's format records


def remember(entry: ModelEntry) -> None:
    """Record ``entry`` in each format record of its ref, so the cache can describe the model without its registry."""
    if entry.source.startswith(_CACHED):  # rebuilt from the cache already
        return
    described = entry.as_dict()
    for fmt, record in cache.get_ref(entry.name).items():
        if isinstance(record, dict) and record.get(ENTRY) != described:
            cache.set_ref(entry.name, fmt, {**{k: v for k, v in record.items() if k != "updated"}, ENTRY: described})


_CACHED = "cache: "


def cached_entry(name: str) -> ModelEntry | None:
    """The entry of a model the cache holds but no registry names (None if the cache cannot describe it)."""
    if not MODEL_NAME.match(name) or not cache.ref_path(name).is_file():
        return None
    ref = cache.get_ref(name)
    formats = cache.cached_formats(name)
    records = [ref[fmt] for fmt in formats]
    source = f"{_CACHED}{cache.ref_path(name)} (no registry names it any more)"
    for record in records:
        if isinstance(record.get(ENTRY), dict) and record[ENTRY].get("architecture"):
            return _entry_from_dict(name, record[ENTRY], source)
    for record in records:  # an export records its architecture in its provenance
        if record.get("architecture"):
            return ModelEntry(name, str(record["architecture"]), summary="exported into the cache",
                              num_classes=record.get("num_classes"), source=source)  # fmt: skip
    if "onnx" in formats:  # a conversion carries zoo.* metadata
        meta = _onnx_metadata(cache.onnx_model_path(name))
        if meta.get("architecture"):
            return ModelEntry(name, str(meta["architecture"]), summary="converted in the cache",
                              num_classes=meta.get("num_classes"), source=source)  # fmt: skip
    return None


def _entry_from_dict(name: str, data: dict[str, Any], source: str) -> ModelEntry:
    known = set(ModelEntry.__dataclass_fields__) - {"name", "artifacts", "source", "train_size"}
    artifacts = {
        kind: Artifact(kind, tuple(a["urls"]), a.get("sha256"), a.get("size"))
        for kind, a in (data.get("artifacts") or {}).items()
        if isinstance(a, dict) and a.get("urls")
    }
    size = data.get("train_size")
    return ModelEntry(name=name, **{k: data[k] for k in known if k in data}, artifacts=artifacts, source=source,
                      train_size=tuple(size) if size else None)  # fmt: skip


def _onnx_metadata(path: Path) -> dict[str, Any]:
    try:
        import onnx

        from zoo.convert import decode_metadata

        model = onnx.load(str(path), load_external_data=False)
        return decode_metadata({p.key: p.value for p in model.metadata_props})
    except Exception:  # noqa: BLE001 - an unreadable file describes nothing; 'zoo cache verify' reports it
        return {}


# ---- what a run needs -----------------------------------------------------------------------------------------------


def command(args: str, *, env: str = "") -> str:
    """A zoo command line to advise: ``--registry FILE`` for each registry the current command was given."""
    from zoo import catalog

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
        from zoo import pull

        say(f"{name}: not in the cache yet; pulling it ('{command(pull_args)}')")
        pull.pull(model, fmt=fmt)
        if fmt == "onnx" or not wants_onnx:
            return
    from zoo import convert

    say(f"{name}: converting it to ONNX ('{command(f'convert {name}')}') ...")
    result = convert.convert(model)
    say(f"{name}: converted in {result.seconds:.1f} s, {result.path}")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
