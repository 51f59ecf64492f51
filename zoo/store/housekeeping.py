"""Cache housekeeping: ``scan`` (zoo cache ls, frozen dataclasses), ``verify`` (re-hash every entry and blob),
``remove`` and ``prune`` (what a killed process left, unreferenced entries and blobs; never anything younger than
``PRUNE_GRACE``, which may belong to a zoo still running), built on zoo/store/cache.py's layout."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.store import artifacts, cache
from zoo.errors import NotCachedError
from zoo.util import SHA256

PRUNE_GRACE = 60.0  # seconds: younger temp files and unreferenced items may belong to a zoo still running
_ENTRY_DIRS = tuple((kind, folder) for folder, kind in artifacts.FOLDERS.items())  # (first kind stored there, folder)
_HEX = re.compile(r"\A[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class EntryInfo:
    """One complete folder under models/ or onnx/."""

    fmt: str  # "paddle" (models/) or "onnx" (onnx/)
    key: str  # folder name: the sha256 of its file list
    path: Path  # the folder
    size: int  # bytes of its files
    files: tuple[str, ...]  # file names, from the manifest
    source: str | None  # what it was made from (provenance "source")
    created: str | None  # when it was committed (UTC)
    names: tuple[str, ...]  # model names whose refs point here; empty for an orphan


@dataclass(frozen=True)
class BlobInfo:
    """One downloaded artifact under blobs/."""

    sha256: str  # "sha256:<hex>", its file name
    path: Path
    size: int  # bytes
    modified: str  # last write (UTC)
    names: tuple[str, ...]  # model names whose refs or entries cite it; empty when unreferenced


@dataclass(frozen=True)
class ModelInfo:
    """What the cache holds for one model name (one refs/<name>.json)."""

    name: str
    formats: tuple[str, ...]  # complete formats: "paddle", then the variants ("onnx", "onnx-int8", ...)
    source: str | None  # where the Paddle model came from: "inference", "weights", a bundle ...
    url: str | None  # the artifact's URL
    sha256: str | None  # the artifact's sha256
    size: int  # bytes of its entries
    updated: str | None  # when its ref last changed (UTC)
    paddle: Path | None  # folder of the Paddle model files
    onnx: Path | None  # the float32 .onnx file (variant "onnx")
    variants: dict[str, Path] = dataclasses.field(default_factory=dict)  # every complete variant's .onnx file


@dataclass(frozen=True)
class CacheInfo:
    """Everything in the cache, as :func:`scan` found it."""

    root: Path  # the cache folder
    models: tuple[ModelInfo, ...]
    entries: tuple[EntryInfo, ...]
    blobs: tuple[BlobInfo, ...]
    temp: tuple[Path, ...]  # leftovers of interrupted work (removed by prune)
    size: int  # bytes of all of the above

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Problem:
    """One finding of :func:`verify`."""

    kind: str  # "corrupt", "missing", "stray" or "incomplete"
    path: Path
    detail: str
    names: tuple[str, ...] = ()  # models affected (whose refs lead to the path)

    def __str__(self) -> str:
        return f"{self.kind}: {self.path} — {self.detail}"


@dataclass(frozen=True)
class VerifyReport:
    checked: int  # files re-hashed
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class PruneReport:
    removed: tuple[Path, ...]  # removed, or (dry run) that would be
    freed: int  # bytes
    kept: tuple[Path, ...]  # candidates younger than PRUNE_GRACE, left alone
    dry_run: bool


def _refs() -> dict[str, dict[str, Any]]:
    """Every readable ref, by model name."""
    refs = {}
    folder = cache.refs_dir()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if cache.is_temp(path.name):
            continue
        with contextlib.suppress(OSError, ValueError):  # IntegrityError: an untrusted ref is reported, never followed
            refs[path.stem] = cache.read_ref(path)
    return refs


def _ref_entries(ref: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(ref key, folder under the cache root, entry key) of every entry a ref points at: Paddle model and variants."""
    for fmt, rec in ref.items():
        if cache.is_entry_format(fmt) and isinstance(rec, dict) and "key" in rec:
            yield fmt, cache.entry_parent(fmt).name, str(rec["key"])


def digests(obj: Any) -> set[str]:
    """Every 'sha256:<hex>' string inside a JSON value (refs and provenance cite blobs under various keys)."""
    if isinstance(obj, str):
        return {obj} if SHA256.match(obj) else set()
    if isinstance(obj, dict):
        return set().union(*(digests(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(digests(v) for v in obj)) if obj else set()
    return set()


def _entry_dirs() -> Iterator[tuple[str, Path]]:
    """(format, folder) of every non-temporary folder under models/ and onnx/."""
    for fmt, sub in _ENTRY_DIRS:
        parent = cache.root() / sub
        for path in sorted(parent.iterdir()) if parent.is_dir() else []:
            if path.is_dir() and not cache.is_temp(path.name):
                yield fmt, path


def _temp_items() -> list[Path]:
    found = []
    for folder in (cache.root(), cache.blobs_dir(), cache.models_dir(), cache.onnx_dir(), cache.refs_dir()):
        if folder.is_dir():
            found += [p for p in sorted(folder.iterdir()) if cache.is_temp(p.name)]
    return found


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _newest_mtime(path: Path) -> float:
    try:
        newest = path.lstat().st_mtime
        if path.is_dir():
            for p in path.rglob("*"):
                with contextlib.suppress(OSError):
                    newest = max(newest, p.lstat().st_mtime)
        return newest
    except OSError:
        return 0.0


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def scan() -> CacheInfo:
    """Read the cache without changing it: models (refs), entries, blobs and leftover temp files."""
    refs = _refs()
    pointing: dict[tuple[str, str], list[str]] = {}
    citing: dict[str, list[str]] = {}
    kinds = dict((sub, fmt) for fmt, sub in _ENTRY_DIRS)
    for name, ref in refs.items():
        for _, sub, key in _ref_entries(ref):
            names = pointing.setdefault((kinds[sub], key), [])
            if name not in names:
                names.append(name)
        for digest in digests(ref):
            citing.setdefault(digest, []).append(name)

    entries = []
    for fmt, path in _entry_dirs():
        if not (path / cache.MANIFEST).is_file():
            continue
        try:
            manifest = cache.read_json(path / cache.MANIFEST)
        except (OSError, ValueError):
            manifest = {}
        names = tuple(pointing.get((fmt, path.name), ()))
        for digest in digests(manifest.get("provenance", {})) if names else ():
            citing.setdefault(digest, []).extend(n for n in names if n not in citing.get(digest, []))
        entries.append(EntryInfo(
            fmt=fmt, key=path.name, path=path, size=_tree_size(path), files=tuple(sorted(manifest.get("files", {}))),
            source=manifest.get("provenance", {}).get("source"), created=manifest.get("created"), names=names,
        ))  # fmt: skip

    blobs = []
    folder = cache.blobs_dir()
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.is_file() and _HEX.match(path.name):
            st = path.stat()
            digest = "sha256:" + path.name
            blobs.append(BlobInfo(digest, path, st.st_size, _iso(st.st_mtime), tuple(citing.get(digest, ()))))

    by_key = {(e.fmt, e.key): e for e in entries}
    models = []
    for name, ref in refs.items():
        found = {fmt: by_key.get((kinds[sub], key)) for fmt, sub, key in _ref_entries(ref)}
        found = {fmt: e for fmt, e in found.items() if e is not None}
        paddle = found.get("paddle")
        files = {v: e.path / ref[v].get("file", "model.onnx") for v, e in sorted(found.items()) if v != "paddle"}
        main = ref.get("paddle") or ref.get("onnx") or {}
        unique = {e.key: e for e in found.values()}  # two variants may share one entry
        models.append(ModelInfo(
            name=name, formats=tuple(["paddle"] * bool(paddle) + list(files)), source=main.get("source"),
            url=main.get("url"), sha256=main.get("sha256"), size=sum(e.size for e in unique.values()),
            updated=main.get("updated"), paddle=paddle.path if paddle else None, onnx=files.get("onnx"), variants=files,
        ))  # fmt: skip

    temp = _temp_items()
    size = sum(e.size for e in entries) + sum(b.size for b in blobs) + sum(_tree_size(p) for p in temp)
    return CacheInfo(cache.root(), tuple(models), tuple(entries), tuple(blobs), tuple(temp), size)


def _check_entry(folder: Path) -> tuple[int, list[Problem]]:
    """Re-hash one entry against its manifest; (files hashed, problems)."""
    try:
        manifest = cache.read_manifest(folder)
    except (OSError, ValueError):
        return 0, [Problem("incomplete", folder, f"no readable {cache.MANIFEST}; run 'zoo cache prune' or pull it again")]
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        return 0, [Problem("corrupt", folder / cache.MANIFEST, "the manifest has no file list; run 'zoo cache rm' on it")]
    problems = []
    if cache.tree_key(files) != folder.name:
        problems.append(Problem("corrupt", folder / cache.MANIFEST, "its file list does not hash to the folder's key"))
    for line in cache.check_tree(folder):
        kind, rest = line.split(" ", 1)
        name, _, detail = rest.partition(" ")
        problems.append(Problem(kind, folder / name, detail.strip("()") or f"{kind} file"))
    return len(files), problems


def _check_blob(path: Path) -> Problem | None:
    if not _HEX.match(path.name):
        return Problem("stray", path, "not named by a sha256; run 'zoo cache prune' or delete it")
    got = cache.sha256_file(path)
    if got != "sha256:" + path.name:
        return Problem("corrupt", path, f"its content hashes to {got}")
    return None


def verify(name: str | None = None) -> VerifyReport:
    """Re-hash every file of every entry (or of ``name``'s) and every blob; report corrupt, missing and stray files.

    Temp files of interrupted work are not problems (``zoo cache prune`` removes them).
    """
    refs = _refs()
    if name is not None and name not in refs:
        raise NotCachedError(f"model '{name}' is not in the cache; run 'zoo cache ls' to see what is")
    checked, problems = 0, []
    for ref_name, ref in sorted(refs.items()) if name is None else [(name, refs[name])]:
        for fmt, sub, key in _ref_entries(ref):
            if not (cache.root() / sub / key / cache.MANIFEST).is_file():
                problems.append(Problem("missing", cache.root() / sub / key, f"the {fmt} model of '{ref_name}'",
                                        (ref_name,)))  # fmt: skip
    if name is None:
        bad_refs = [p for p in cache.refs_dir().glob("*.json") if not cache.is_temp(p.name) and p.stem not in refs]
        problems += [Problem("corrupt", p, "not a readable ref; run 'zoo cache rm' on the model") for p in bad_refs]
        folders = [path for _, path in _entry_dirs()]
        found = sorted(cache.blobs_dir().iterdir()) if cache.blobs_dir().is_dir() else []
        blobs = [p for p in found if not cache.is_temp(p.name)]
    else:
        ref = refs[name]
        folders = list(dict.fromkeys(cache.root() / sub / key for _, sub, key in _ref_entries(ref)))
        folders = [f for f in folders if f.is_dir()]
        blobs = [cache.blob_path(d) for d in sorted(digests(ref)) if cache.blob_path(d).is_file()]
    for folder in folders:
        count, found = _check_entry(folder)
        checked += count
        problems += found
    for path in blobs:
        if path.is_dir():
            problems.append(Problem("stray", path, "a folder among the blobs"))
            continue
        checked += 1
        problem = _check_blob(path)
        if problem:
            problems.append(problem)
    return VerifyReport(checked, tuple(_with_owners(problems, refs)))


def _with_owners(problems: list[Problem], refs: dict[str, dict[str, Any]]) -> list[Problem]:
    """Name the models each problem affects, so the fix can name them too."""
    owners: dict[Path, set[str]] = {}
    for name, ref in refs.items():
        for _, sub, key in _ref_entries(ref):
            owners.setdefault(cache.root() / sub / key, set()).add(name)
        for digest in digests(ref):
            owners.setdefault(cache.blob_path(digest), set()).add(name)
    out = []
    for problem in problems:
        names = set(problem.names)
        for path in (problem.path, *problem.path.parents[:2]):
            names |= owners.get(path, set())
        out.append(dataclasses.replace(problem, names=tuple(sorted(names))))
    return out


def remove(name: str, variant: str | None = None) -> list[Path]:
    """Forget ``name`` (or only its ``variant``): drop the ref, then entries and blobs no other ref uses.

    Returns what went.
    """
    if variant == "tuned":  # the tuned choice beside the model (zoo/store/tuned.py), not an entry of its own
        from zoo.store import tuned

        return tuned.forget(name)
    refs = _refs()
    if name not in refs and not (cache.ref_path(name).exists() or cache.ref_path(name).is_symlink()):
        raise NotCachedError(f"model '{name}' is not in the cache; run 'zoo cache ls' to see what is")
    if variant is not None:
        return _remove_variant(name, variant, refs)
    ref = refs.pop(name, {})
    still_used = {(sub, key) for r in refs.values() for _, sub, key in _ref_entries(r)}
    still_cited = set().union(*(digests(r) for r in refs.values())) if refs else set()
    doomed: list[Path] = []
    for _, sub, key in _ref_entries(ref):
        folder = cache.root() / sub / key
        if (sub, key) not in still_used and folder.is_dir() and folder not in doomed:
            doomed.append(folder)
    for digest in sorted(digests(ref) - still_cited):
        if cache.blob_path(digest).is_file():
            doomed.append(cache.blob_path(digest))
    cache.drop_ref(name)  # first, so no reader follows the ref into a folder being deleted
    from zoo.store import tuned

    if tuned.path(name).is_file():  # a tuned choice of a model that is gone would only ever be stale
        doomed.append(tuned.path(name))
    for path in doomed:
        cache.discard(path)
    return [cache.ref_path(name), *doomed]


def _remove_variant(name: str, variant: str, refs: dict[str, dict[str, Any]]) -> list[Path]:
    """Drop one variant of ``name`` and its entry (unless another ref, or another variant, uses it)."""
    if not cache.is_variant(variant):
        raise NotCachedError(f"'{variant}' is not a variant ({', '.join(filter(cache.is_variant, artifacts.KINDS))}); "
                             f"run 'zoo cache ls' to see what '{name}' has")  # fmt: skip
    rec = refs.get(name, {}).get(variant)
    cache.drop_variant(name, variant)  # NotCachedError naming the variants there are
    key = str((rec or {}).get("key"))
    refs[name] = {k: v for k, v in refs.get(name, {}).items() if k != variant}
    sub = artifacts.get(variant).folder
    if any(key == k and sub == s for r in refs.values() for _, s, k in _ref_entries(r)):
        return []
    folder = cache.root() / sub / key
    if folder.is_dir():
        cache.discard(folder)
        return [folder]
    return []


def prune(dry_run: bool = False) -> PruneReport:
    """Remove leftovers of interrupted work, entries no ref points to, and blobs nothing cites.

    Anything younger than PRUNE_GRACE seconds is kept: it may belong to a zoo process still running.
    """
    info = scan()
    candidates: list[Path] = list(info.temp)
    candidates += [e.path for e in info.entries if not e.names]
    candidates += [path for _, path in _entry_dirs() if not (path / cache.MANIFEST).is_file()]  # no manifest yet
    candidates += [b.path for b in info.blobs if not b.names]
    now = time.time()
    removed, kept, freed = [], [], 0
    for path in candidates:
        if now - _newest_mtime(path) < PRUNE_GRACE:
            kept.append(path)
            continue
        with contextlib.suppress(OSError):
            size = _tree_size(path)
            if not dry_run:
                cache.discard(path)
            removed.append(path)
            freed += size
    return PruneReport(tuple(removed), freed, tuple(kept), dry_run)
