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
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoo import config
from zoo.errors import IntegrityError, NotCachedError

CHUNK = 1 << 20
TEMP_PREFIX = ".staging-"  # folders being built or discarded
TEMP_SUFFIXES = (".incomplete", ".partial", ".partial.json")  # files being downloaded or written
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
    import hashlib  # here and below: stdlib modules `zoo list` never needs stay out of the CLI's start-up

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    import hashlib

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
    import tempfile

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
    import shutil
    import tempfile

    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=parent))
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


def is_temp(name: str) -> bool:
    """Whether a file or folder name is one of zoo's temporary names (never a finished entry)."""
    return name.startswith(TEMP_PREFIX) or name.endswith(TEMP_SUFFIXES)


def discard(path: Path) -> None:
    """Remove an entry folder or file so that readers see it whole or gone: rename aside, then delete."""
    if path.is_dir() and not path.is_symlink():
        import shutil

        aside = path.with_name(f"{TEMP_PREFIX}discard-{path.name}-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        shutil.rmtree(aside, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# ---- refs: name → entries -------------------------------------------------------------------------------------------


def ref_path(name: str) -> Path:
    return refs_dir() / f"{name}.json"


def get_ref(name: str) -> dict[str, Any]:
    """The ref record of a model name ({} if none)."""
    path = ref_path(name)
    return read_json(path) if path.is_file() else {}


def set_ref(name: str, fmt: str, record: dict[str, Any]) -> None:
    """Point ``name``'s ``fmt`` ("paddle" or "onnx") at an entry; record has at least 'key'."""
    from zoo import locks

    with locks.hold(locks_dir() / f"ref-{name}.lock"):
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
        fix = f"'zoo convert {name}'" if "paddle" in cached_formats(name) else f"'zoo pull {name}', then 'zoo convert {name}'"
        raise NotCachedError(f"model '{name}' has no ONNX model in the cache; run {fix}")
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
