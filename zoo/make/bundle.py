"""Bundles: carry cached models to a machine without network access.

A bundle is an uncompressed tar with the cache's own layout, so an extracted bundle also serves as ``--mirror DIR``::

    bundle.json              index: format, version, models and their entries, sha256 and size of every other file
    zoo.lock                 the pins of the bundled models (same format as <cache>/zoo.lock)
    blobs/<hex>              the downloaded artifacts the models came from, named by their sha256
    models/<key>/...         Paddle model folders, manifest.json included
    onnx/<key>/...           ONNX model folders, manifest.json included
    refs/<name>.json         which entries each name points to

Import extracts into a staging folder, re-hashes every file (blob names, manifests, tree keys, the index), checks the
pins for conflicts, and only then moves blobs and entries into the cache, merges the pins and sets the refs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from zoo.make import bundle_trust
from zoo.store import archive, cache, housekeeping, pins, tuned, userfiles
from zoo.errors import ArchiveError, IntegrityError, NotCachedError
from zoo.util import now as _now

FORMAT = "zoo-bundle"
VERSION = 1
INDEX = "bundle.json"
LOCK = "zoo.lock"
_ENTRY_DIRS = {"paddle": "models", "onnx": "onnx"}
_HEX = r"[0-9a-f]{64}"
_MEMBER = re.compile(
    rf"\A(?:bundle\.json|zoo\.lock|blobs/{_HEX}|(?:refs|tuned)/[a-z0-9][a-z0-9._-]*\.json"
    rf"|models/{_HEX}/(?:manifest\.json|model\.pdmodel|model\.json|model\.pdiparams|deploy\.yaml)"
    rf"|onnx/{_HEX}/(?:manifest\.json|deploy\.yaml|[A-Za-z0-9][A-Za-z0-9._-]*\.onnx))\Z"
)
_HINT = "the bundle is damaged or was altered; make it again with 'zoo bundle export' on the source machine"


@dataclass(frozen=True)
class BundleSummary:
    """What a bundle holds (after export or import)."""

    path: Path  # the bundle file
    names: tuple[str, ...]  # model names
    files: int  # files in the bundle, bundle.json included
    size: int  # bytes of those files


def is_member(name: str) -> bool:
    """The allowlist of a bundle's files."""
    return bool(_MEMBER.match(name))


# ---- export ---------------------------------------------------------------------------------------------------------


def export_bundle(names: list[str], out: Path) -> BundleSummary:
    """Write the cached models ``names`` (entries, the blobs they came from, pins, refs) into the tar ``out``."""
    names = list(dict.fromkeys(names))
    if not names:
        raise NotCachedError("no model names given; run 'zoo cache ls' to see what the cache holds")
    sources: dict[str, Path | bytes] = {}  # member name → file to copy, or content
    expected: dict[str, str] = {}  # member name → sha256 its bytes must have (from manifests and blob names)
    refs_out: dict[str, dict[str, Any]] = {}
    for name in names:
        ref = cache.get_ref(name)
        formats = [fmt for fmt in ref if cache.is_entry_format(fmt) and isinstance(ref[fmt], dict)]  # + variants
        if not formats:
            raise NotCachedError(f"model '{name}' is not in the cache; run 'zoo pull {name}' first")
        for fmt in formats:
            key = str(ref[fmt].get("key"))
            folder = cache.entry_parent(fmt) / key
            manifest = _manifest_of(folder, name, fmt)
            for rel, rec in manifest["files"].items():
                sources[f"{folder.parent.name}/{key}/{rel}"] = folder / rel
                expected[f"{folder.parent.name}/{key}/{rel}"] = rec["sha256"]
            sources[f"{folder.parent.name}/{key}/{cache.MANIFEST}"] = folder / cache.MANIFEST
        for digest in sorted(housekeeping.digests(ref)):  # the artifacts it came from, when still cached
            blob = cache.blob_path(digest)
            if blob.is_file():
                sources[f"blobs/{blob.name}"] = blob
                expected[f"blobs/{blob.name}"] = "sha256:" + blob.name
        refs_out[name] = {fmt: {k: v for k, v in rec.items() if k != "updated"} for fmt, rec in ref.items()
                          if isinstance(rec, dict)}  # fmt: skip
        sources[f"refs/{name}.json"] = _json_bytes(refs_out[name])
        if tuned.path(name).is_file():  # the tuned choice travels; the importing machine uses it only if it matches
            sources[f"{tuned.FOLDER}/{name}.json"] = tuned.path(name)
    lock = {pin_id: e for pin_id, e in pins.load_all().items()  # only pins the bundle's own files back
            if pin_id.split("/", 1)[0] in names and f"blobs/{cache.hex_of(e['sha256'])}" in sources}  # fmt: skip
    sources[LOCK] = _json_bytes(lock)
    bad = sorted(m for m in sources if not is_member(m))
    if bad:
        raise ArchiveError(f"cannot bundle {', '.join(bad)}: not a file a bundle may carry; report this as a zoo bug")

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = userfiles.temp_beside(out)  # the umask's permissions, not 0600
    try:
        files: dict[str, dict[str, Any]] = {}
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for member in sorted(sources):
                digest, size = _add(tf, member, sources[member])
                if member in expected and digest != expected[member]:
                    raise IntegrityError(
                        f"{sources[member]} is corrupt (expected {expected[member]}, got {digest}); "
                        f"run 'zoo cache verify', then 'zoo pull NAME --force', then export again"
                    )
                files[member] = {"sha256": digest, "size": size}
            index = {
                "format": FORMAT, "version": VERSION, "created": _now(),
                "models": {n: {fmt: rec.get("key") for fmt, rec in r.items() if cache.is_entry_format(fmt)}
                           for n, r in refs_out.items()},
                "files": files,
            }  # fmt: skip
            _add(tf, INDEX, _json_bytes(index))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    size = sum(f["size"] for f in files.values())
    return BundleSummary(out, tuple(names), len(files) + 1, size)


def _manifest_of(folder: Path, name: str, fmt: str) -> dict[str, Any]:
    try:
        manifest = cache.read_json(folder / cache.MANIFEST)
        if isinstance(manifest.get("files"), dict):
            return manifest
    except (OSError, ValueError, AttributeError):
        pass
    raise NotCachedError(f"the {fmt} model of '{name}' ({folder}) is missing or incomplete; run 'zoo pull {name}'")


def _add(tf: tarfile.TarFile, member: str, source: Path | bytes) -> tuple[str, int]:
    """Add one regular file; return the sha256 and size of the bytes actually written."""
    info = tarfile.TarInfo(member)
    info.mode, info.mtime, info.type = 0o644, int(time.time()), tarfile.REGTYPE
    if isinstance(source, bytes):
        info.size = len(source)
        reader = _Hashing(io.BytesIO(source))
        tf.addfile(info, reader)
    else:
        with open(source, "rb") as f:
            info.size = os.fstat(f.fileno()).st_size
            reader = _Hashing(f)
            tf.addfile(info, reader)
    return "sha256:" + reader.hash.hexdigest(), reader.size


class _Hashing:
    """A reader that hashes what passes through it, so each file is read once."""

    def __init__(self, f: BinaryIO):
        self.f, self.hash, self.size = f, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data


# ---- import ---------------------------------------------------------------------------------------------------------


def import_bundle(path: Path) -> BundleSummary:
    """Verify every file of a bundle, then add its blobs, entries, pins and refs to the cache."""
    path = Path(path)
    if not path.is_file():
        raise NotCachedError(f"bundle {path} does not exist; make one with 'zoo bundle export NAME... -o FILE.tar'")
    with cache.staging(cache.root()) as stage:
        try:
            names = archive.extract(
                path, stage, allow=is_member, max_members=archive.BUNDLE_MAX_MEMBERS,
                max_bytes=archive.BUNDLE_MAX_BYTES, hint=_HINT,
            )  # fmt: skip
        except ArchiveError as exc:  # tarfile's reasons span lines; zoo's errors are one
            raise ArchiveError(" ".join(str(exc).split())) from None
        actual = {n: {"sha256": cache.sha256_file(stage / n), "size": (stage / n).stat().st_size} for n in names}
        index = _check_index(path, stage, actual)
        trees = _check_trees(path, stage, actual)
        refs = _check_refs(path, stage, trees)
        bundle_trust.check_content(
            lambda fmt, key: (stage if (fmt, key) in trees else cache.root()) / _ENTRY_DIRS[fmt] / key,
            trees, refs, lambda what: _fail(path, what))  # what pull checks, not only the hashes  # fmt: skip
        lock = pins.parse((stage / LOCK).read_text(encoding="utf-8"), f"{path}: {LOCK}") if LOCK in actual else {}
        lock = _carried_pins(path, lock, refs, actual)
        _check_pins(path, lock)
        # everything is verified: make it visible, blobs and entries first, refs last
        for name in sorted(n for n in actual if n.startswith("blobs/")):
            target = cache.blob_path(name.split("/", 1)[1])
            if not (target.is_file() and cache.sha256_file(target) == actual[name]["sha256"]):
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(stage / name, target)
        for fmt, key in sorted(trees):
            _install_tree(stage / _ENTRY_DIRS[fmt] / key, cache.root() / _ENTRY_DIRS[fmt])
        pins.merge(lock)
        for name, ref in sorted(refs.items()):
            for fmt, rec in ref.items():
                cache.set_ref(name, fmt, rec)
        for member in sorted(n for n in actual if n.startswith(f"{tuned.FOLDER}/")):
            name = Path(member).stem
            if name in refs and tuned.load_doc_from(stage / member) is not None:  # else: not a record; left out
                tuned.path(name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(stage / member, tuned.path(name))
    models = tuple(sorted(index.get("models", {}) or refs))
    return BundleSummary(path, models, len(actual), sum(a["size"] for a in actual.values()))


def _fail(path: Path, what: str) -> ArchiveError:
    return ArchiveError(f"bundle {path}: {what}; nothing was imported — {_HINT}")


def _check_index(path: Path, stage: Path, actual: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """bundle.json lists every other file with the sha256 and size it really has, and nothing else."""
    if INDEX not in actual:
        raise _fail(path, f"has no {INDEX}")
    try:
        index = cache.read_json(stage / INDEX)
    except ValueError as exc:
        raise _fail(path, f"{INDEX} is not valid JSON ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("files"), dict):
        raise _fail(path, f"{INDEX} is not a zoo bundle index")
    if index.get("version") != VERSION:
        raise ArchiveError(f"bundle {path} has version {index.get('version')!r}; this zoo reads version {VERSION} "
                           "— upgrade zoo, or export the bundle with this version")  # fmt: skip
    listed = index["files"]
    for name in sorted(set(actual) - {INDEX}):
        if name not in listed:
            raise _fail(path, f"{name} is not listed in {INDEX}")
        rec = listed[name]
        if not isinstance(rec, dict) or rec.get("sha256") != actual[name]["sha256"] or rec.get("size") != actual[name][
                "size"]:  # fmt: skip
            raise _fail(path, f"{name} does not match {INDEX} (it hashes to {actual[name]['sha256']})")
    missing = sorted(set(listed) - set(actual))
    if missing:
        raise _fail(path, f"{INDEX} lists {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} but the tar "
                          "does not hold it")  # fmt: skip
    for name in actual:
        if name.startswith("blobs/") and actual[name]["sha256"] != "sha256:" + name.split("/", 1)[1]:
            raise _fail(path, f"{name} does not hash to its name (it hashes to {actual[name]['sha256']})")
    return index


def _check_trees(path: Path, stage: Path, actual: dict[str, dict[str, Any]]) -> set[tuple[str, str]]:
    """Each entry folder: its manifest lists exactly its files, with their hashes, and hashes to the folder's key."""
    trees: set[tuple[str, str]] = set()
    for fmt, sub in _ENTRY_DIRS.items():
        for name in actual:
            if name.startswith(sub + "/"):
                trees.add((fmt, name.split("/")[1]))
    for fmt, key in sorted(trees):
        prefix = f"{_ENTRY_DIRS[fmt]}/{key}/"
        where = prefix.rstrip("/")
        if prefix + cache.MANIFEST not in actual:
            raise _fail(path, f"{where} has no {cache.MANIFEST}")
        try:
            manifest = cache.read_json(stage / prefix / cache.MANIFEST)
            files = manifest["files"]
            assert isinstance(files, dict)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise _fail(path, f"{where}/{cache.MANIFEST} is not a valid manifest") from None
        held = {n[len(prefix):] for n in actual if n.startswith(prefix)} - {cache.MANIFEST}
        if held != set(files):
            extra, gone = sorted(held - set(files)), sorted(set(files) - held)
            raise _fail(path, f"{where} does not match its manifest (unlisted: {extra or 'none'}, missing: "
                              f"{gone or 'none'})")  # fmt: skip
        for rel, rec in sorted(files.items()):
            got = actual[prefix + rel]
            if not isinstance(rec, dict) or rec.get("sha256") != got["sha256"] or rec.get("size") != got["size"]:
                raise _fail(path, f"{where}/{rel} does not match its manifest (it hashes to {got['sha256']})")
        if cache.tree_key(files) != key or manifest.get("key", key) != key:
            raise _fail(path, f"{where}: its manifest does not hash to the folder's name")
        if fmt == "paddle" and not any(p in files for p in cache.PROGRAM_FILES):
            raise _fail(path, f"{where} holds no Paddle program (model.json or model.pdmodel)")
    return trees


def _check_refs(path: Path, stage: Path, trees: set[tuple[str, str]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Each ref points only at entries the bundle (or the cache) holds."""
    refs: dict[str, dict[str, dict[str, Any]]] = {}
    folder = stage / "refs"
    for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            ref = cache.read_json(file)
        except ValueError as exc:
            raise _fail(path, f"refs/{file.name} is not valid JSON ({exc})") from None
        if not isinstance(ref, dict) or not ref or not all(cache.is_entry_format(f) for f in ref):
            raise _fail(path, f"refs/{file.name} is not a ref (expected 'paddle' and/or 'onnx' records)")
        if problem := cache.ref_problem(ref):  # e.g. file: "../../../../etc/passwd"
            raise _fail(path, f"refs/{file.name} cannot be trusted: {problem}")
        for fmt, rec in ref.items():
            key = rec.get("key") if isinstance(rec, dict) else None
            if not isinstance(key, str) or not re.fullmatch(_HEX, key):
                raise _fail(path, f"refs/{file.name}: the {fmt} record has no valid key")
            kind = "paddle" if fmt == "paddle" else "onnx"  # every variant lives in onnx/
            in_cache = (cache.root() / _ENTRY_DIRS[kind] / key / cache.MANIFEST).is_file()
            if (kind, key) not in trees and not in_cache:
                raise _fail(path, f"refs/{file.name} points at {_ENTRY_DIRS[kind]}/{key}, which the bundle lacks")
        refs[file.stem] = ref
    if not refs:
        raise _fail(path, "holds no refs/<name>.json, so no model")
    return refs


def _carried_pins(path: Path, lock: dict[str, dict[str, Any]], refs: dict[str, Any],
                  actual: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The bundle's pins that it may set: only for the models it carries, each matching a blob it carries.

    A pin for another model would decide what later pulls of that model accept, so it is refused; a pin whose blob
    is not in the bundle cannot be checked, so it is left out (the blob is pinned on its first download instead)."""
    kept = {}
    for pin_id, entry in sorted(lock.items()):
        name = pin_id.split("/", 1)[0]
        if name not in refs:
            raise _fail(path, f"{LOCK} pins '{pin_id}', but the bundle carries no model '{name}'")
        blob = actual.get(f"blobs/{cache.hex_of(entry['sha256'])}")
        if blob is None:
            continue
        if blob["size"] != entry["size"]:
            raise _fail(path, f"{LOCK} pins '{pin_id}' to {entry['size']} bytes, but its blob holds {blob['size']}")
        kept[pin_id] = entry
    return kept


def _check_pins(path: Path, lock: dict[str, dict[str, Any]]) -> None:
    """The bundle's pins must agree with the local ones; checked before anything is installed."""
    local = pins.load_all()
    clashes = [p for p, e in sorted(lock.items()) if p in local and local[p]["sha256"] != e["sha256"]]
    if clashes:
        raise IntegrityError(
            f"bundle {path} pins {', '.join(clashes)} to other content than {cache.lock_file()} does; nothing was "
            "imported — if the bundle is right, delete those entries from the lock file and import again"
        )


def _install_tree(src: Path, parent: Path) -> None:
    """Move a verified entry into place, unless an intact copy is already there (a damaged one is replaced)."""
    final = parent / src.name
    if (final / cache.MANIFEST).is_file() and not cache.check_tree(final):
        return
    if final.exists():
        cache.discard(final)
    parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, final)
    except OSError:
        if not (final / cache.MANIFEST).is_file():  # else a concurrent import put the same entry there
            raise
    cache.fsync_dir(parent)


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()

