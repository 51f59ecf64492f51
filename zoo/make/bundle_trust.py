"""What a bundle's content must prove before import, beyond matching hashes: the checks ``zoo pull`` makes.

Hashes only show that a bundle's files are the ones its index lists; whoever made the bundle chose them. So each Paddle
model must hold exactly its program's parameters (:func:`zoo.formats.params.check_model`), each ONNX file must pass
the ONNX check (:func:`zoo.store.archive.check_onnx`), and each ref must agree with what its files say: a conversion
carries the key of the Paddle model it was made from (``zoo.paddle_key``), which must be the ref's own Paddle model
and the record's claim — a conversion of another network never answers for this one. A record that claims no
derivation is a published ONNX file: it must not carry another model's key, and must match the local registry's
pinned sha256 when there is one. The entry a ref describes must have a sane class count.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.store import cache

Fail = Callable[[str], Exception]  # what → the error to raise (names the bundle, says nothing was imported)


def check_content(locate: Callable[[str, str], Path], trees: set[tuple[str, str]],
                  refs: dict[str, dict[str, dict[str, Any]]], fail: Fail) -> None:  # fmt: skip
    """Raise ``fail(...)`` unless every bundled tree is a usable model and every ref agrees with its files.

    ``locate(fmt, key)`` is the folder of an entry (in the staged bundle, or already in the cache)."""
    from zoo.formats import params
    from zoo.store import archive

    for fmt, key in sorted(trees):
        folder = locate(fmt, key)
        where = f"{'models' if fmt == 'paddle' else 'onnx'}/{key}"
        try:
            if fmt == "paddle":
                params.check_model(cache.program_file(folder), folder / cache.PARAMS_FILE, "")
            else:
                for onnx in sorted(folder.glob("*.onnx")):
                    archive.check_onnx(onnx)
        except ZooError as exc:
            raise fail(f"{where} is not a usable model ({_short(exc)})") from None
        except Exception as exc:  # noqa: BLE001 - crafted content may raise anything; it is refused all the same
            raise fail(f"{where} could not be checked ({type(exc).__name__}: {_short(exc)})") from None
    for name, ref in sorted(refs.items()):
        _check_ref(name, ref, locate, fail)


def _check_ref(name: str, ref: dict[str, dict[str, Any]], locate: Callable[[str, str], Path], fail: Fail) -> None:
    paddle_key = (ref.get("paddle") or {}).get("key")
    for fmt, record in sorted(ref.items()):
        entry = record.get("entry")
        classes = entry.get("num_classes") if isinstance(entry, dict) else None
        if classes is not None and not _sane_classes(classes):
            raise fail(f"refs/{name}.json: its {fmt} record describes num_classes {str(classes)[:40]}")
        if not cache.is_variant(fmt):
            continue
        folder = locate("onnx", record["key"])
        made_from = _paddle_key(folder / record.get("file", "model.onnx"))
        claim = record.get("derived_from") or record.get("from")
        what = f"refs/{name}.json: its {fmt} model"
        if made_from is not None and claim is not None and made_from != claim:
            raise fail(f"{what} was converted from models/{made_from}, but the ref claims models/{claim}")
        if made_from is not None and paddle_key is not None and made_from != paddle_key:
            raise fail(f"{what} was converted from models/{made_from}, not from '{name}''s Paddle model "
                       f"models/{paddle_key}: a conversion of another network")  # fmt: skip
        if claim is not None and made_from is None:
            raise fail(f"{what} claims to derive from models/{claim} but carries no zoo.paddle_key to show it")
        if claim is None and made_from is None:
            _check_published(name, fmt, record, folder, fail)


def _check_published(name: str, fmt: str, record: dict[str, Any], folder: Path, fail: Fail) -> None:
    """A published ONNX model (no derivation claimed): its record, manifest and the local registry agree."""
    provenance = cache.read_manifest(folder).get("provenance") or {}
    if fmt != "onnx" or record.get("source") != "onnx" or provenance.get("sha256") != record.get("sha256"):
        raise fail(f"refs/{name}.json: its {fmt} model claims no Paddle model it was made from, and is not the "
                   "published ONNX file its manifest describes")  # fmt: skip
    pinned = _registry_onnx_sha256(name)
    if pinned is not None and pinned != record.get("sha256"):
        raise fail(f"refs/{name}.json: its published ONNX file is {record.get('sha256')}, but the registry pins "
                   f"{pinned}")  # fmt: skip


def _registry_onnx_sha256(name: str) -> str | None:
    from zoo.registry import entries

    try:
        artifact = entries.load().get(name, None)
    except ZooError:
        return None
    onnx = artifact.artifacts.get("onnx") if artifact is not None else None
    return onnx.sha256 if onnx is not None else None


def _paddle_key(path: Path) -> str | None:
    """The ``zoo.paddle_key`` an ONNX file carries (None if it carries none)."""
    from zoo.formats.onnx_meta import read_metadata

    try:
        key = read_metadata(path).get("paddle_key")
    except Exception:  # noqa: BLE001 - unreadable metadata proves nothing (the file itself passed the ONNX check)
        return None
    return str(key) if key else None


def _sane_classes(value: Any) -> bool:
    from zoo.registry.entries import MAX_CLASSES

    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_CLASSES


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
