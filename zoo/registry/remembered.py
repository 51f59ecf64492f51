"""What the cache knows of a model without its registry: ``zoo pull`` records the registry entry in each record of
the model's ref (``refs/<name>.json``, key ``entry``), and :func:`cached_entry` rebuilds the entry from it — or, for
models cached before that, from the export's provenance or the converted ONNX file's ``zoo.*`` metadata. So a model in
the cache stays usable by name after the registry file that named it is gone (a demo's, a colleague's, a bundle's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.store import cache
from zoo.registry.entries import Artifact, ModelEntry
from zoo.util import MODEL_NAME

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
        if isinstance(record.get(ENTRY), dict):  # an added model has no architecture, and needs none
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
    from zoo.registry import model_facts

    facts_keys = ("labels", "palette", "ignore_index", "reduce_zero_label", "input")
    known = set(ModelEntry.__dataclass_fields__) - {"name", "artifacts", "source", "train_size", *facts_keys}
    artifacts = {
        kind: Artifact(kind, tuple(a["urls"]), a.get("sha256"), a.get("size"),
                       tuple(s.get("docs") or "" for s in a.get("sources") or ()) if a.get("sources") else ())
        for kind, a in (data.get("artifacts") or {}).items()
        if isinstance(a, dict) and a.get("urls")
    }
    size = data.get("train_size")
    raw = {k: data[k] for k in facts_keys if data.get(k) is not None}
    if isinstance(raw.get("input"), dict):
        raw["input"] = {k: v for k, v in raw["input"].items() if v is not None}
    problems: list[str] = []
    facts = model_facts.parse(str(cache.ref_path(name)), raw, problems)  # a damaged record just describes less
    return ModelEntry(name=name, **{k: data[k] for k in known if k in data}, artifacts=artifacts, source=source,
                      train_size=tuple(size) if size else None, **facts)  # fmt: skip


def _onnx_metadata(path: Path) -> dict[str, Any]:
    try:
        import onnx

        from zoo.formats.onnx_meta import decode_metadata

        model = onnx.load(str(path), load_external_data=False)
        return decode_metadata({p.key: p.value for p in model.metadata_props})
    except Exception:  # noqa: BLE001 - an unreadable file describes nothing; 'zoo cache verify' reports it
        return {}
