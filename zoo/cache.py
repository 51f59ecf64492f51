"""The local cache: content-addressed, written atomically, readable offline.

Layout under ``config.cache_dir()``::

    blobs/<hex>                 downloaded artifacts (archives, .pdparams, .onnx), named by their sha256
    models/<key>/               a Paddle inference model: model.json|model.pdmodel, model.pdiparams, deploy.yaml,
                                manifest.json (written last). <key> is the sha256 of the manifest's file list.
    onnx/<key>/                 a converted or published ONNX model: model.onnx, manifest.json
    refs/<name>.json            which models/ and onnx/ entries a registry name points to, and where they came from
    locks/                      one lock file per artifact
    zoo.lock                    sha256 and size of each unpinned artifact's first download (trust on first use)

An entry directory is built in a ``.staging-*`` sibling and renamed into place, so a reader sees it complete or not at
all. Temporary names start with ``.``; anything left by a killed process is ignored and removed by ``zoo cache prune``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import config
from zoo.errors import IntegrityError, NotCachedError

CHUNK = 1 << 20
MANIFEST = "manifest.json"
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


def hex_of(digest: str) -> str:
    """'sha256:<hex>' → '<hex>'."""
    return digest.split(":", 1)[1] if digest.startswith("sha256:") else digest


def blob_path(digest: str) -> Path:
    return blobs_dir() / hex_of(digest)


def sha256_file(path: Path) -> str:
    """'sha256:<hex>' of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old content or the new, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".incomplete", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@contextlib.contextmanager
def staging(parent: Path) -> Iterator[Path]:
    """A fresh ``.staging-*`` folder beside the final entry; removed on any failure (incl. Ctrl-C)."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def file_records(folder: Path) -> dict[str, dict[str, Any]]:
    """{relative name: {sha256, size}} for every file under folder except the manifest."""
    records = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST:
            records[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return records


def tree_key(files: dict[str, dict[str, Any]]) -> str:
    """Content key of a folder: sha256 of its sorted (name, sha256) list."""
    listing = "\n".join(f"{name} {rec['sha256']}" for name, rec in sorted(files.items()))
    return hex_of(sha256_bytes(listing.encode()))


def commit_tree(stage: Path, parent: Path, provenance: dict[str, Any]) -> Path:
    """Hash a staged folder, write its manifest last, and rename it into ``parent/<key>``.

    If an identical entry is already there (another process won the race), the staged copy is dropped.
    """
    files = file_records(stage)
    key = tree_key(files)
    manifest = {"key": key, "files": files, "provenance": provenance, "created": _now()}
    atomic_write_json(stage / MANIFEST, manifest)
    fsync_dir(stage)
    final = parent / key
    if (final / MANIFEST).is_file():
        return final
    try:
        os.rename(stage, final)
    except OSError:
        if not (final / MANIFEST).is_file():
            raise
    fsync_dir(parent)
    return final


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise NotCachedError(f"{folder} has no {MANIFEST}; it is not a complete cache entry — run 'zoo cache prune'")
    return read_json(path)


def check_tree(folder: Path) -> list[str]:
    """Problems of one entry against its manifest: corrupt, missing and stray files (empty list: intact)."""
    manifest = read_manifest(folder)
    expected = manifest.get("files", {})
    problems = []
    for name, rec in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"missing {name}")
        elif path.stat().st_size != rec["size"] or sha256_file(path) != rec["sha256"]:
            problems.append(f"corrupt {name} (expected {rec['sha256']})")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST and rel not in expected:
            problems.append(f"stray {rel}")
    return problems


def verify_files(folder: Path, names: list[str], fix: str = "run 'zoo pull NAME --force' to fetch it again") -> None:
    """Re-hash the named files of an entry (e.g. params before converting); raise IntegrityError on a mismatch."""
    manifest = read_manifest(folder)
    for name in names:
        rec = manifest["files"].get(name)
        path = folder / name
        if rec is None or not path.is_file():
            raise IntegrityError(f"{path} is missing from the cache entry; {fix}")
        got = sha256_file(path)
        if got != rec["sha256"]:
            raise IntegrityError(f"{path} is corrupt: expected {rec['sha256']}, got {got}; {fix}")


# ---- refs: name → entries -------------------------------------------------------------------------------------------


def ref_path(name: str) -> Path:
    return refs_dir() / f"{name}.json"


def get_ref(name: str) -> dict[str, Any]:
    """The ref record of a model name ({} if none)."""
    path = ref_path(name)
    return read_json(path) if path.is_file() else {}


def set_ref(name: str, fmt: str, record: dict[str, Any]) -> None:
    """Point ``name``'s ``fmt`` ("paddle" or "onnx") at an entry; record has at least 'key'."""
    from filelock import FileLock

    locks_dir().mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks_dir() / f"ref-{name}.lock")):
        ref = get_ref(name)
        ref[fmt] = {**record, "updated": _now()}
        atomic_write_json(ref_path(name), ref)


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
    folder = models_dir() / rec["key"] if rec else None
    if folder is None or not (folder / MANIFEST).is_file():
        raise NotCachedError(
            f"model '{name}' has no Paddle model in the cache ({root()}); run 'zoo pull {name}' "
            f"(or 'zoo export {name}', or 'zoo bundle import FILE' on an offline machine)"
        )
    return folder


def onnx_model_path(name: str) -> Path:
    """The cached .onnx file of ``name``; NotCachedError if absent."""
    rec = get_ref(name).get("onnx")
    folder = onnx_dir() / rec["key"] if rec else None
    if folder is None or not (folder / MANIFEST).is_file():
        raise NotCachedError(f"model '{name}' has no ONNX model in the cache; run 'zoo convert {name}'")
    return folder / rec.get("file", "model.onnx")


def program_file(folder: Path) -> Path:
    """The program file of a Paddle model folder: PIR model.json or legacy model.pdmodel."""
    for name in PROGRAM_FILES:
        if (folder / name).is_file():
            return folder / name
    raise NotCachedError(f"{folder} holds neither model.json nor model.pdmodel; it is not a Paddle inference model")


def cached_formats(name: str) -> list[str]:
    """Which formats of ``name`` are complete in the cache."""
    formats = []
    ref = get_ref(name)
    if "paddle" in ref and (models_dir() / ref["paddle"]["key"] / MANIFEST).is_file():
        formats.append("paddle")
    if "onnx" in ref and (onnx_dir() / ref["onnx"]["key"] / MANIFEST).is_file():
        formats.append("onnx")
    return formats


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---- scan, verify, remove, prune ------------------------------------------------------------------------------------

TEMP_PREFIX = ".staging-"
TEMP_SUFFIXES = (".incomplete", ".partial", ".partial.json")
PRUNE_GRACE = 60.0  # seconds: younger temp files and unreferenced items may belong to a zoo still running
_ENTRY_DIRS = (("paddle", "models"), ("onnx", "onnx"))  # ref format → folder under the cache root
_HEX = re.compile(r"^[0-9a-f]{64}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


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
    formats: tuple[str, ...]  # complete formats: "paddle", "onnx"
    source: str | None  # where the Paddle model came from: "inference", "weights", a bundle ...
    url: str | None  # the artifact's URL
    sha256: str | None  # the artifact's sha256
    size: int  # bytes of its entries
    updated: str | None  # when its ref last changed (UTC)
    paddle: Path | None  # folder of the Paddle model files
    onnx: Path | None  # the .onnx file


@dataclass(frozen=True)
class CacheInfo:
    """Everything in the cache, as :func:`scan` found it."""

    root: Path
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


def is_temp(name: str) -> bool:
    """A name used only while writing (zoo's own and the downloader's)."""
    return name.startswith(TEMP_PREFIX) or name.endswith(TEMP_SUFFIXES)


def discard(path: Path) -> None:
    """Remove an entry folder or file so that readers see it whole or gone: rename aside, then delete."""
    if path.is_dir() and not path.is_symlink():
        aside = path.with_name(f"{TEMP_PREFIX}discard-{path.name}-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        shutil.rmtree(aside, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _refs() -> dict[str, dict[str, Any]]:
    """Every readable ref, by model name."""
    refs = {}
    folder = refs_dir()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if is_temp(path.name):
            continue
        with contextlib.suppress(OSError, ValueError):
            data = read_json(path)
            if isinstance(data, dict):
                refs[path.stem] = data
    return refs


def digests(obj: Any) -> set[str]:
    """Every 'sha256:<hex>' string inside a JSON value (refs and provenance cite blobs under various keys)."""
    if isinstance(obj, str):
        return {obj} if _DIGEST.match(obj) else set()
    if isinstance(obj, dict):
        return set().union(*(digests(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(digests(v) for v in obj)) if obj else set()
    return set()


def _entry_dirs() -> Iterator[tuple[str, Path]]:
    """(format, folder) of every non-temporary folder under models/ and onnx/."""
    for fmt, sub in _ENTRY_DIRS:
        parent = root() / sub
        for path in sorted(parent.iterdir()) if parent.is_dir() else []:
            if path.is_dir() and not is_temp(path.name):
                yield fmt, path


def _temp_items() -> list[Path]:
    found = []
    for folder in (root(), blobs_dir(), models_dir(), onnx_dir(), refs_dir()):
        if folder.is_dir():
            found += [p for p in sorted(folder.iterdir()) if is_temp(p.name)]
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
    for name, ref in refs.items():
        for fmt, _ in _ENTRY_DIRS:
            if isinstance(ref.get(fmt), dict) and "key" in ref[fmt]:
                pointing.setdefault((fmt, ref[fmt]["key"]), []).append(name)
        for digest in digests(ref):
            citing.setdefault(digest, []).append(name)

    entries = []
    for fmt, path in _entry_dirs():
        if not (path / MANIFEST).is_file():
            continue
        try:
            manifest = read_json(path / MANIFEST)
        except (OSError, ValueError):
            manifest = {}
        names = tuple(pointing.get((fmt, path.name), ()))
        for digest in digests(manifest.get("provenance", {})) if names else ():
            citing.setdefault(digest, []).extend(n for n in names if n not in citing.get(digest, []))
        entries.append(
            EntryInfo(
                fmt=fmt, key=path.name, path=path, size=_tree_size(path),
                files=tuple(sorted(manifest.get("files", {}))), source=manifest.get("provenance", {}).get("source"),
                created=manifest.get("created"), names=names,
            )
        )  # fmt: skip

    blobs = []
    folder = blobs_dir()
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.is_file() and _HEX.match(path.name):
            st = path.stat()
            digest = "sha256:" + path.name
            blobs.append(BlobInfo(digest, path, st.st_size, _iso(st.st_mtime), tuple(citing.get(digest, ()))))

    by_key = {(e.fmt, e.key): e for e in entries}
    models = []
    for name, ref in refs.items():
        paddle = by_key.get(("paddle", ref.get("paddle", {}).get("key", "")))
        onnx = by_key.get(("onnx", ref.get("onnx", {}).get("key", "")))
        main = ref.get("paddle") or ref.get("onnx") or {}
        onnx_file = onnx.path / ref["onnx"].get("file", "model.onnx") if onnx else None
        models.append(
            ModelInfo(
                name=name, formats=tuple(f for f, e in (("paddle", paddle), ("onnx", onnx)) if e),
                source=main.get("source"), url=main.get("url"), sha256=main.get("sha256"),
                size=sum(e.size for e in (paddle, onnx) if e), updated=main.get("updated"),
                paddle=paddle.path if paddle else None, onnx=onnx_file,
            )
        )  # fmt: skip

    temp = _temp_items()
    size = sum(e.size for e in entries) + sum(b.size for b in blobs) + sum(_tree_size(p) for p in temp)
    return CacheInfo(root(), tuple(models), tuple(entries), tuple(blobs), tuple(temp), size)


def _check_entry(folder: Path) -> tuple[int, list[Problem]]:
    """Re-hash one entry against its manifest; (files hashed, problems)."""
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError):
        return 0, [Problem("incomplete", folder, f"no readable {MANIFEST}; run 'zoo cache prune' or pull it again")]
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        return 0, [Problem("corrupt", folder / MANIFEST, "the manifest has no file list; run 'zoo cache rm' on it")]
    problems = []
    if tree_key(files) != folder.name:
        problems.append(Problem("corrupt", folder / MANIFEST, "its file list does not hash to the folder's key"))
    for line in check_tree(folder):
        kind, rest = line.split(" ", 1)
        name, _, detail = rest.partition(" ")
        problems.append(Problem(kind, folder / name, detail.strip("()") or f"{kind} file"))
    return len(files), problems


def _check_blob(path: Path) -> Problem | None:
    if not _HEX.match(path.name):
        return Problem("stray", path, "not named by a sha256; run 'zoo cache prune' or delete it")
    got = sha256_file(path)
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
        for fmt, sub in _ENTRY_DIRS:
            rec = ref.get(fmt)
            if isinstance(rec, dict) and not (root() / sub / str(rec.get("key")) / MANIFEST).is_file():
                problems.append(
                    Problem("missing", root() / sub / str(rec.get("key")), f"the {fmt} model of '{ref_name}'",
                            (ref_name,))
                )  # fmt: skip
    if name is None:
        bad_refs = [p for p in refs_dir().glob("*.json") if not is_temp(p.name) and p.stem not in refs]
        problems += [Problem("corrupt", p, "not a readable ref; run 'zoo cache rm' on the model") for p in bad_refs]
        folders = [path for _, path in _entry_dirs()]
        blobs = [p for p in sorted(blobs_dir().iterdir()) if not is_temp(p.name)] if blobs_dir().is_dir() else []
    else:
        ref = refs[name]
        folders = [root() / sub / ref[fmt]["key"] for fmt, sub in _ENTRY_DIRS if isinstance(ref.get(fmt), dict)]
        folders = [f for f in folders if f.is_dir()]
        blobs = [blob_path(d) for d in sorted(digests(ref)) if blob_path(d).is_file()]
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
        for fmt, sub in _ENTRY_DIRS:
            if isinstance(ref.get(fmt), dict):
                owners.setdefault(root() / sub / str(ref[fmt].get("key")), set()).add(name)
        for digest in digests(ref):
            owners.setdefault(blob_path(digest), set()).add(name)
    out = []
    for problem in problems:
        names = set(problem.names)
        for path in (problem.path, *problem.path.parents[:2]):
            names |= owners.get(path, set())
        out.append(dataclasses.replace(problem, names=tuple(sorted(names))))
    return out


def remove(name: str) -> list[Path]:
    """Forget ``name``: drop its ref, then its entries and blobs unless another model uses them. Returns what went."""
    refs = _refs()
    if name not in refs and not ref_path(name).exists():
        raise NotCachedError(f"model '{name}' is not in the cache; run 'zoo cache ls' to see what is")
    ref = refs.pop(name, {})
    still_used = {(fmt, r[fmt]["key"]) for r in refs.values() for fmt, _ in _ENTRY_DIRS if isinstance(r.get(fmt), dict)}
    still_cited = set().union(*(digests(r) for r in refs.values())) if refs else set()
    doomed: list[Path] = []
    for fmt, sub in _ENTRY_DIRS:
        rec = ref.get(fmt)
        if isinstance(rec, dict) and (fmt, rec.get("key")) not in still_used:
            folder = root() / sub / str(rec.get("key"))
            if folder.is_dir():
                doomed.append(folder)
    for digest in sorted(digests(ref) - still_cited):
        if blob_path(digest).is_file():
            doomed.append(blob_path(digest))
    drop_ref(name)  # first, so no reader follows the ref into a folder being deleted
    for path in doomed:
        discard(path)
    return [ref_path(name), *doomed]


def prune(dry_run: bool = False) -> PruneReport:
    """Remove leftovers of interrupted work, entries no ref points to, and blobs nothing cites.

    Anything younger than PRUNE_GRACE seconds is kept: it may belong to a zoo process still running.
    """
    info = scan()
    candidates: list[Path] = list(info.temp)
    candidates += [e.path for e in info.entries if not e.names]
    candidates += [path for fmt, path in _entry_dirs() if not (path / MANIFEST).is_file()]  # incomplete: no manifest
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
                discard(path)
            removed.append(path)
            freed += size
    return PruneReport(tuple(removed), freed, tuple(kept), dry_run)
