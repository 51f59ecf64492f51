"""The local cache: content-addressed, written atomically, readable offline.

Layout under ``config.cache_dir()``::

    blobs/<hex>                 downloaded artifacts (archives, .pdparams, .onnx), named by their sha256
    models/<key>/               a Paddle inference model: model.json|model.pdmodel, model.pdiparams, deploy.yaml,
                                manifest.json (written last). <key> is the sha256 of the manifest's file list.
    onnx/<key>/                 a converted or published ONNX model: model.onnx, manifest.json
    refs/<name>.json            which models/ and onnx/ entries a registry name points to, and where they came from:
                                "paddle" (the Paddle model) and its variants — "onnx" (the float32 ONNX model),
                                "onnx-int8", "onnx-fp16", ... — each with its own provenance (the kinds, what derives
                                from what and how each is made: zoo/store/artifacts.py)
    locks/                      one lock file per artifact
    zoo.lock                    sha256 and size of each unpinned artifact's first download (trust on first use)

An entry directory (zoo/store/entry.py) is built in a ``.staging-*`` sibling and renamed into place, so a reader sees it complete or not at
all. Temporary names start with ``.``; anything left by a killed process is ignored and removed by ``zoo cache prune``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo import config
from zoo.errors import InvalidNameError, NotCachedError
from zoo.store import artifacts
from zoo.store.entry import (  # noqa: F401 (one entry's folder and atomic writes; callers use cache.<name>)
    MANIFEST, TEMP_PREFIX, TEMP_SUFFIXES, atomic_write, atomic_write_json, check_tree, commit_tree, discard, disk_full,
    file_records, fsync_dir, hex_of, is_disk_full, is_temp, read_json, read_manifest, staging, tree_key, verify_files,
)
from zoo.util import now as _now
from zoo.util import sha256_bytes, sha256_file  # noqa: F401 (their home is zoo.util; callers use cache.sha256_*)

CHUNK = 1 << 20
PROGRAM_FILES = ("model.json", "model.pdmodel")
PARAMS_FILE = "model.pdiparams"


def root() -> Path:
    return config.cache_dir()


def blobs_dir() -> Path:
    return root() / "blobs"


def models_dir() -> Path:
    return root() / "models"


def onnx_dir() -> Path:
    return root() / "onnx"


def refs_dir() -> Path:
    return root() / "refs"


def locks_dir() -> Path:
    return root() / "locks"


def lock_file() -> Path:
    return root() / "zoo.lock"


def blob_path(digest: str) -> Path:
    return blobs_dir() / hex_of(digest)


# ---- refs: name → entries -------------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    """``name`` if it follows the registry's naming rule, else InvalidNameError. Every path built from a model name
    goes through here first, so no name ('../../x', '/abs/path', 'a/b') can reach outside the cache."""
    from zoo.util import MODEL_NAME

    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise InvalidNameError(
            f"{name!r} is not a model name (lowercase letters, digits, '.', '_' and '-', starting with a letter or "
            "digit); run 'zoo cache ls' or 'zoo list' to see the names"
        )
    return name


def ref_path(name: str) -> Path:
    return refs_dir() / f"{check_name(name)}.json"


def get_ref(name: str) -> dict[str, Any]:
    """The ref record of a model name ({} if none)."""
    path = ref_path(name)
    return read_json(path) if path.is_file() else {}


def set_ref(name: str, fmt: str, record: dict[str, Any]) -> list[str]:
    """Point ``name``'s ``fmt`` ("paddle", or a variant: "onnx", "onnx-int8", ...) at an entry; record has 'key'.

    When the Paddle model changes, every variant derived from the old one is dropped in the same write — a
    conversion of another network must never answer for this one. Returns the variants dropped.
    """
    from zoo.store import locks

    if not is_entry_format(fmt):
        raise ValueError(f"'{fmt}' is not an artifact kind; choose one of: {', '.join(artifacts.KINDS)}")
    with locks.hold(locks_dir() / f"ref-{check_name(name)}.lock"):
        ref = get_ref(name)
        dropped = []
        if fmt == "paddle":
            dropped = [v for v, rec in ref.items() if is_variant(v) and _stale(rec, str(record.get("key")))]
            for variant in dropped:
                del ref[variant]
        ref[fmt] = {**record, "updated": _now()}
        atomic_write_json(ref_path(name), ref)
    return dropped


def _stale(record: Any, paddle_key: str) -> bool:
    """A variant made from another Paddle model than ``paddle_key`` (a published ONNX derives from none)."""
    if not isinstance(record, dict):
        return True
    source = record.get("derived_from") or record.get("from")  # "from": what convert has always recorded
    return source is not None and source != paddle_key


def drop_ref(name: str, fmt: str | None = None) -> None:
    path = ref_path(name)
    if fmt is None:
        path.unlink(missing_ok=True)
        return
    ref = get_ref(name)
    if ref.pop(fmt, None) is not None:
        atomic_write_json(path, ref) if ref else path.unlink(missing_ok=True)


def paddle_model_dir(name: str) -> Path:
    """Folder of the cached Paddle model of ``name``; NotCachedError if absent or incomplete."""
    rec = get_ref(name).get("paddle")
    folder = models_dir() / str(rec.get("key")) if isinstance(rec, dict) else None
    if folder is None or not (folder / MANIFEST).is_file():
        raise NotCachedError(
            f"model '{name}' has no Paddle model in the cache ({root()}); run 'zoo pull {name}' "
            f"(or 'zoo export {name}', or 'zoo bundle import FILE' on an offline machine)"
        )
    return folder


def onnx_model_path(name: str) -> Path:
    """The cached float32 .onnx file of ``name``; NotCachedError if absent."""
    return variant_path(name, "onnx")


def program_file(folder: Path) -> Path:
    """The program file of a Paddle model folder: PIR model.json or legacy model.pdmodel."""
    for name in PROGRAM_FILES:
        if (folder / name).is_file():
            return folder / name
    raise NotCachedError(f"{folder} holds neither model.json nor model.pdmodel; it is not a Paddle inference model")


# ---- variants: models derived from the Paddle model (kinds: zoo/store/artifacts.py) ----------------------------------

ONNX_VARIANT = "onnx"  # the float32 conversion (or the published ONNX model)


def is_variant(fmt: str) -> bool:
    """Whether a ref key names a derived artifact ("onnx", "onnx-int8", "onnx-fp16", ...)."""
    return artifacts.is_variant(fmt)


def is_entry_format(fmt: str) -> bool:
    """Whether a ref key names a cache entry: "paddle" or a variant."""
    return fmt in artifacts.KINDS


def entry_parent(fmt: str) -> Path:
    """The folder entries of ``fmt`` live in (models/ for the Paddle model, onnx/ for the ONNX variants)."""
    return root() / artifacts.get(fmt).folder


def variant_for(precision: str) -> str:
    """The variant an ONNX backend runs at ``precision``: "onnx" for fp32 (and bf16), "onnx-int8" for int8, ..."""
    return artifacts.kind_for("onnx", precision).name


def variants(name: str) -> dict[str, dict[str, Any]]:
    """``name``'s variant records by variant name."""
    return {k: v for k, v in get_ref(name).items() if is_variant(k) and isinstance(v, dict)}


def variant_path(name: str, variant: str = ONNX_VARIANT) -> Path:
    """The cached file of ``name``'s ``variant``; NotCachedError (saying how to make it) if absent."""
    kind = artifacts.get(variant)
    rec = get_ref(name).get(variant)
    folder = entry_parent(variant) / str(rec["key"]) if isinstance(rec, dict) and rec.get("key") else None
    if folder is None or not (folder / MANIFEST).is_file():
        raise NotCachedError(f"model '{name}' has no {variant} model in the cache; run '{kind.make_command(name)}'")
    return folder / rec.get("file", "model.onnx")


def artifact_path(name: str, kind: str) -> Path:
    """Where ``name``'s ``kind`` is cached (the Paddle model's folder, a variant's file); NotCachedError if absent."""
    return paddle_model_dir(name) if artifacts.get(kind).derives_from is None else variant_path(name, kind)


def store_variant(model: Any, variant: str, file: Path, provenance: dict[str, Any]) -> Path:
    """Cache ``file`` as ``model``'s ``variant`` (e.g. "onnx-int8") derived from its current Paddle model.

    ``model`` is a :class:`zoo.registry.catalog.ModelHandle` or a model name.
    ``provenance`` says how it was made (``tool``, ``settings``, ...); ``derived_from`` (the Paddle model's key) is
    added, so the variant is dropped when that model changes. The file is copied into ``onnx/<key>/`` and committed
    with its own manifest; the ref is updated last. Returns the cached file.
    """
    import shutil

    name = str(getattr(model, "name", model))
    if not is_variant(variant):
        raise ValueError(f"'{variant}' is not a variant name ({', '.join(filter(is_variant, artifacts.KINDS))})")
    paddle = get_ref(name).get("paddle") or {}
    record = {"variant": variant, "derived_from": paddle.get("key"), "name": name, **provenance}
    from zoo.formats.onnx_meta import check_onnx

    with staging(onnx_dir()) as stage:
        target = stage / "model.onnx"
        shutil.copyfile(file, target)
        check_onnx(target)  # what zoo caches, runners can open
        folder = commit_tree(stage, onnx_dir(), record)
    sha = read_manifest(folder)["files"]["model.onnx"]["sha256"]
    set_ref(name, variant, {"key": folder.name, "file": "model.onnx", "sha256": sha, **record})
    return folder / "model.onnx"


def drop_variant(name: str, variant: str) -> None:
    """Forget ``name``'s ``variant`` (its entry stays until ``zoo cache prune``, unless shared)."""
    if variant not in variants(name):
        have = ", ".join(sorted(variants(name))) or "none"
        raise NotCachedError(f"model '{name}' has no cached {variant} model (cached variants: {have}); "
                             "run 'zoo cache ls' to see what is cached")  # fmt: skip
    drop_ref(name, variant)


def cached_formats(name: str) -> list[str]:
    """Which formats of ``name`` are complete in the cache."""
    formats = []
    ref = get_ref(name)
    if "paddle" in ref and (models_dir() / ref["paddle"]["key"] / MANIFEST).is_file():
        formats.append("paddle")
    for variant in sorted(v for v in ref if is_variant(v)):
        if isinstance(ref[variant], dict) and (entry_parent(variant) / str(ref[variant].get("key")) / MANIFEST).is_file():
            formats.append(variant)
    return formats
