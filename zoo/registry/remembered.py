"""What the cache knows of a model without its registry: ``zoo pull`` records the registry entry in each record of
the model's ref (``refs/<name>.json``, key ``entry``), and :func:`cached_description` gives it back — or, for models
cached before that, what the export's provenance or the converted ONNX file's ``zoo.*`` metadata say — for
:func:`zoo.registry.entries.from_record` to rebuild the entry (this module stays below the entries it
describes). So a model in
the cache stays usable by name after the registry file that named it is gone (a demo's, a colleague's, a bundle's).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.store import cache
from zoo.util import MODEL_NAME

if TYPE_CHECKING:
    from zoo.registry.entries import ModelEntry

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


def cached_description(name: str) -> tuple[dict[str, Any], str] | None:
    """(the entry's fields as recorded, the source to name) of a model the cache holds but no registry names; None if
    the cache cannot describe it."""
    if not MODEL_NAME.match(name) or not cache.ref_path(name).is_file():
        return None
    ref = cache.get_ref(name)
    formats = cache.cached_formats(name)
    records = [ref[fmt] for fmt in formats]
    source = f"{_CACHED}{cache.ref_path(name)} (no registry names it any more)"
    for record in records:
        if isinstance(record.get(ENTRY), dict):  # an added model has no architecture, and needs none
            return record[ENTRY], source
    for record in records:  # an export records its architecture in its provenance
        if record.get("architecture"):
            return {"architecture": str(record["architecture"]), "summary": "exported into the cache",
                    "num_classes": record.get("num_classes")}, source  # fmt: skip
    if "onnx" in formats:  # a conversion carries zoo.* metadata
        meta = _onnx_metadata(cache.onnx_model_path(name))
        if meta.get("architecture"):
            return {"architecture": str(meta["architecture"]), "summary": "converted in the cache",
                    "num_classes": meta.get("num_classes")}, source  # fmt: skip
    return None


def _onnx_metadata(path: Path) -> dict[str, Any]:
    try:
        import onnx

        from zoo.formats.onnx_meta import decode_metadata

        model = onnx.load(str(path), load_external_data=False)
        return decode_metadata({p.key: p.value for p in model.metadata_props})
    except Exception:  # noqa: BLE001 - an unreadable file describes nothing; 'zoo cache verify' reports it
        return {}
