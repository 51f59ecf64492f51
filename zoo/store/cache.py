"""The local cache: content-addressed, written atomically, readable offline.

Layout under ``config.cache_dir()``::

    blobs/<hex>                 downloaded artifacts (archives, .pdparams, .onnx), named by their sha256
    models/<key>/               a Paddle inference model: model.json|model.pdmodel, model.pdiparams, deploy.yaml,
                                manifest.json (written last). <key> is the sha256 of the manifest's file list.
    onnx/<key>/                 a converted or published ONNX model: model.onnx, manifest.json
    refs/<name>.json            which models/ and onnx/ entries a registry name points to, and where they came from:
                                "paddle" (the Paddle model) and its variants — "onnx" (the float32 ONNX model),
                                "onnx-int8", "onnx-fp16", ... — each with its own provenance
    locks/                      one lock file per artifact
    zoo.lock                    sha256 and size of each unpinned artifact's first download (trust on first use)

An entry directory is built in a ``.staging-*`` sibling and renamed into place, so a reader sees it complete or not at
all. Temporary names start with ``.``; anything left by a killed process is ignored and removed by ``zoo cache prune``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoo import config
from zoo.errors import DiskFullError, IntegrityError, InvalidNameError, NotCachedError
from zoo.util import now as _now
from zoo.util import sha256_bytes, sha256_file  # noqa: F401 (their home is zoo.util; callers use cache.sha256_*)

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


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error means the disk (or the user's quota) is full."""
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: OSError, folder: Path, need: int | None, what: str = "") -> DiskFullError:
    """The one-line error for a full disk: which folder, how many bytes were needed, how many are free."""
    import errno
    import shutil

    try:
        free = f"{shutil.disk_usage(folder).free} bytes are free"
    except OSError:
        free = "its free space is unknown"
    cause = "disk quota exceeded" if exc.errno == errno.EDQUOT else "no space left on the device"
    needs = f"{what or 'this'} needs {need} bytes" if need is not None else f"{what or 'this'} needs more space"
    return DiskFullError(
        f"{cause} in {folder}: {needs}, {free}; nothing half-written was kept — free up space there (or point "
        "ZOO_HOME at a larger disk) and run the command again"
    )


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old content or the new, never a mix."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".incomplete", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if is_disk_full(exc):
            raise disk_full(exc, path.parent, len(data), f"writing {path.name}") from None
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@contextlib.contextmanager
def staging(parent: Path, need: int | None = None) -> Iterator[Path]:
    """A fresh ``.staging-*`` folder beside the final entry; removed on any failure (incl. Ctrl-C). A full disk while
    it is in use becomes a DiskFullError naming ``parent`` and ``need`` (bytes the entry needs, when known)."""
    import shutil
    import tempfile

    path = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=parent))
        yield path
    except OSError as exc:
        if not is_disk_full(exc) or isinstance(exc, DiskFullError):
            raise
        written = _tree_size(path) if path is not None else 0
        what = "this entry" if need is not None else f"this entry ({written} bytes written when it ran out)"
        raise disk_full(exc, parent, need, what) from None
    finally:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


def _tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


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
        if not check_tree(final):
            return final
        discard(final)  # a damaged copy of this very entry: the fresh one replaces it
    try:
        os.rename(stage, final)
    except OSError:
        if not (final / MANIFEST).is_file():
            raise
    fsync_dir(parent)
    return final


def read_manifest(folder: Path) -> dict[str, Any]:
    """An entry's manifest; IntegrityError if it is torn, corrupt, a symlink or lists a file outside its folder."""
    path = folder / MANIFEST
    if not path.is_file():
        raise NotCachedError(f"{folder} has no {MANIFEST}; it is not a complete cache entry — run 'zoo cache prune'")
    fix = "run 'zoo cache verify' to see which model uses it, then 'zoo cache rm NAME' and pull it again"
    try:
        manifest = None if path.is_symlink() else json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise IntegrityError(f"{path} is not readable JSON ({type(exc).__name__}); {fix}") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(r, dict) and _is_inside(n) for n, r in files.items()):
        raise IntegrityError(f"{path} is not a manifest zoo wrote (no file list, or a file outside its folder); {fix}")
    return manifest


def _is_inside(name: Any) -> bool:
    """A manifest's file name: relative, inside the entry folder (models are flat; sub-folders are allowed)."""
    return isinstance(name, str) and all(_FILE_NAME.fullmatch(part) for part in name.split("/"))


def check_tree(folder: Path) -> list[str]:
    """Problems of one entry against its manifest: corrupt, missing and stray files (empty list: intact)."""
    try:
        manifest = read_manifest(folder)
    except IntegrityError:
        return [f"corrupt {MANIFEST}"]
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


KEY = re.compile(r"\A[0-9a-f]{64}\Z")  # an entry's key: the sha256 hex of its file list
_FILE_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z")  # a file inside an entry: a plain name, never a path


def ref_problem(ref: Any) -> str | None:
    """Why a ref's content must not be used (None: it may). Keys and file names from a ref become paths under the
    cache root, so each entry record needs a hash for its key and a plain name for its file (no '../../victim')."""
    if not isinstance(ref, dict):
        return "it is not a JSON object"
    for fmt, rec in ref.items():
        if not is_entry_format(str(fmt)):
            continue
        if not isinstance(rec, dict):
            return f"its '{fmt}' record is not a JSON object"
        key, file = rec.get("key"), rec.get("file", "model.onnx")
        if not isinstance(key, str) or not KEY.fullmatch(key):
            return f"its '{fmt}' key {str(key)[:80]!r} is not a cache key (64 hex digits)"
        if not isinstance(file, str) or not _FILE_NAME.fullmatch(file):
            return f"its '{fmt}' file {str(file)[:80]!r} is not a plain file name"
    return None


def read_ref(path: Path) -> dict[str, Any]:
    """A ref file's content, checked by :func:`ref_problem`; IntegrityError (naming the fix) if it is torn, corrupt,
    a symlink or names paths outside the cache."""
    name = path.stem
    fix = f"run 'zoo cache rm {name}' to forget it, then 'zoo pull {name}'"
    if path.is_symlink():
        raise IntegrityError(f"the ref {path} is a symlink, which zoo never writes; {fix}")
    try:
        ref = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # torn, not UTF-8, nested 100,000 deep
        raise IntegrityError(f"the ref {path} is not readable JSON ({type(exc).__name__}); {fix}") from None
    problem = ref_problem(ref)
    if problem:
        raise IntegrityError(f"the ref {path} cannot be trusted: {problem}; {fix}")
    return ref


def get_ref(name: str) -> dict[str, Any]:
    """The ref record of a model name ({} if none); IntegrityError if it cannot be trusted (:func:`read_ref`)."""
    path = ref_path(name)
    return read_ref(path) if path.is_file() or path.is_symlink() else {}


def set_ref(name: str, fmt: str, record: dict[str, Any]) -> list[str]:
    """Point ``name``'s ``fmt`` ("paddle", or a variant: "onnx", "onnx-int8", ...) at an entry; record has 'key'.

    When the Paddle model changes, every variant derived from the old one is dropped in the same write — a
    conversion of another network must never answer for this one. Returns the variants dropped.
    """
    from zoo.store import locks

    if not is_entry_format(fmt):
        raise ValueError(f"'{fmt}' is neither 'paddle' nor a variant name like 'onnx' or 'onnx-int8'")
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
    folder = models_dir() / rec["key"] if rec else None
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


# ---- variants: models derived from the Paddle model ------------------------------------------------------------------

ONNX_VARIANT = "onnx"  # the float32 conversion (or the published ONNX model)
_VARIANT = re.compile(r"\Aonnx(-[a-z0-9]+)*\Z")


def is_variant(fmt: str) -> bool:
    """Whether a ref key names an ONNX variant ("onnx", "onnx-int8", "onnx-fp16", ...)."""
    return bool(_VARIANT.match(fmt))


def is_entry_format(fmt: str) -> bool:
    """Whether a ref key names a cache entry: "paddle" or a variant."""
    return fmt == "paddle" or is_variant(fmt)


def entry_parent(fmt: str) -> Path:
    """The folder entries of ``fmt`` live in: models/ for the Paddle model, onnx/ for every variant."""
    return models_dir() if fmt == "paddle" else onnx_dir()


def variant_for(precision: str) -> str:
    """The variant holding a precision: fp32 (and bf16) run the plain conversion "onnx", others "onnx-<precision>"."""
    # bf16 is an engine setting (OpenVINO, oneDNN) applied to the float32 file, not a file of its own
    return ONNX_VARIANT if precision in ("fp32", "bf16") else f"{ONNX_VARIANT}-{precision}"


def variants(name: str) -> dict[str, dict[str, Any]]:
    """``name``'s variant records by variant name."""
    return {k: v for k, v in get_ref(name).items() if is_variant(k) and isinstance(v, dict)}


def variant_path(name: str, variant: str = ONNX_VARIANT) -> Path:
    """The cached .onnx file of ``name``'s ``variant``; NotCachedError (saying how to make it) if absent."""
    rec = get_ref(name).get(variant)
    folder = onnx_dir() / str(rec["key"]) if isinstance(rec, dict) and rec.get("key") else None
    if folder is None or not (folder / MANIFEST).is_file():
        if variant == ONNX_VARIANT:
            fix = f"'zoo convert {name}'" if "paddle" in cached_formats(name) else f"'zoo pull {name}', then 'zoo convert {name}'"
            raise NotCachedError(f"model '{name}' has no ONNX model in the cache; run {fix}")
        precision = variant.split("-", 1)[1]
        calib = " --calib-synthetic 32" if precision == "int8" else ""  # int8 needs a calibration set
        raise NotCachedError(
            f"model '{name}' has no {variant} model in the cache; run "
            f"'zoo quantize {name} --precision {precision}{calib}'"
        )
    return folder / rec.get("file", "model.onnx")


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
        raise ValueError(f"'{variant}' is not a variant name (onnx, onnx-int8, onnx-fp16, ...)")
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
        if (onnx_dir() / str(ref[variant].get("key")) / MANIFEST).is_file():
            formats.append(variant)
    return formats
