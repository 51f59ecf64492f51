"""``zoo pull``: bring a model's published files into the cache, so everything after works offline.

The Paddle model comes from the entry's ``inference`` archive. If that archive is gone (every URL answers 4xx or its
host does not exist — not a 5xx, a timeout or a bad hash), the entry's ``weights`` are fetched instead and exported
with :func:`zoo.make.export.export_model`. ``fmt="onnx"`` fetches the published ``onnx`` artifact (a .onnx file or a tar
holding one). A model already cached and intact is returned at once, without touching the network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from zoo.registry import catalog, entries as registry, remembered
from zoo.store import archive, cache, pins, repair
from zoo.errors import ArchiveError, DiskFullError, DownloadError, NotCachedError, WeightsError, ZooError
from zoo.util import first_line as _first_line

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle

log = logging.getLogger(__name__)

FORMATS = ("paddle", "onnx", "all")
SOURCES = ("inference", "weights")


@dataclass(frozen=True)
class PullResult:
    """What one pull put in (or found in) the cache."""

    name: str  # the model's registry name
    fmt: str  # "paddle" or "onnx"
    source: str  # the artifact used: "inference", "weights" or "onnx"
    url: str | None  # where it came from
    sha256: str | None  # "sha256:<hex>" of the downloaded artifact
    path: Path  # folder of the Paddle model files, or the .onnx file
    reused: bool  # True: it was already cached, nothing was fetched
    note: str = ""  # why another source was used, if one was


@dataclass(frozen=True)
class _Options:
    mirror: str | None
    force: bool
    offline: bool | None
    require_hash: bool | None
    progress: bool | None  # fetch's progress bar: None = when stderr is a terminal
    handle: ModelHandle  # the model being pulled, resolved once


def pull(
    model: ModelHandle | str,
    *,
    fmt: str = "paddle",
    source: str | None = None,
    mirror: str | None = None,
    force: bool = False,
    offline: bool | None = None,
    require_hash: bool | None = None,
    progress: bool | None = None,
) -> list[PullResult]:
    """Fetch ``model`` into the cache (``fmt`` "paddle", "onnx" or "all"); one result per format."""
    if fmt not in FORMATS:
        raise ZooError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    if source is not None and source not in SOURCES:
        raise ZooError(f"unknown source '{source}'; choose one of {', '.join(SOURCES)}")
    if source is not None and fmt == "onnx":
        raise ZooError("--from picks the source of the Paddle model; drop it, or use --format paddle|all")
    handle = catalog.handle(model)
    entry = handle.entry
    if entry is None:
        raise NotCachedError(f"model '{handle.name}' is in no registry, so there is nothing to pull; "
                             "run 'zoo list' to see the models that can be pulled")  # fmt: skip
    opts = _Options(mirror, force, offline, require_hash, progress, handle)
    results = []
    if fmt in ("paddle", "all"):
        results.append(_pull_paddle(entry, source, opts))
    if fmt in ("onnx", "all"):
        results.append(_pull_onnx(entry, opts))
    remembered.remember(entry)  # the cache can describe the model once its registry file is gone
    return results


# ---- Paddle model ---------------------------------------------------------------------------------------------------


def _pull_paddle(entry: registry.ModelEntry, source: str | None, opts: _Options) -> PullResult:
    name = entry.name
    if source is not None and source not in entry.artifacts:
        other = "weights" if source == "inference" else "inference"
        raise NotCachedError(
            f"model '{name}' has no [{source}] artifact in its registry entry ({entry.source}); "
            f"run 'zoo pull {name} --from {other}'"
        )
    sources = [source] if source else [s for s in SOURCES if s in entry.artifacts]
    if not sources:
        raise NotCachedError(
            f"model '{name}' publishes neither an inference archive nor weights; run 'zoo pull {name} --format onnx'"
        )
    if not opts.force and (cached := _cached_paddle(name, source)) is not None:
        return cached
    with _pull_lock(name, "paddle"):
        if not opts.force and (cached := _cached_paddle(name, source)) is not None:
            return cached  # another process pulled it while we waited
        try:
            if sources[0] == "inference":
                try:
                    return _from_inference(entry, opts)
                except DownloadError as exc:
                    if len(sources) == 1 or not exc.gone:  # only a source that is gone for good is replaced
                        raise
                    if "not found (HTTP 404)" in exc.causes:  # truly gone; a DNS failure is said once, below
                        log.warning("%s: the inference archive is gone (HTTP 404); exporting from the trained "
                                    "weights instead", name)  # fmt: skip
                    note = f"the inference archive is gone ({_first_line(exc)}); exported from the trained weights"
                    return _from_weights(entry, opts, note)
            return _from_weights(entry, opts, "")
        except DownloadError as exc:
            raise unreachable(name, exc, opts) from exc  # ZOO_DEBUG=1 shows the URLs and reasons


def unreachable(name: str, exc: DownloadError, opts: Any) -> DownloadError:
    """A failed pull in one line: what failed, by cause, and the next step that works from here (offline too)."""
    causes = ", ".join(exc.causes) or "download failed"
    mirror = getattr(opts, "mirror", None)
    tried = f"the mirror {mirror} and the registry's URLs" if mirror else "the registry's URLs"
    return DownloadError(f"could not fetch '{name}' from {tried}: {causes}; without a network, make it locally: "
                         f"'zoo export {name} --weights FILE' (a .pdparams file) or '--weights random' (untrained, for "
                         f"tests), or 'zoo bundle import FILE'; ZOO_DEBUG=1 shows every URL tried",
                         gone=exc.gone, causes=exc.causes)  # fmt: skip


def _cached_paddle(name: str, source: str | None) -> PullResult | None:
    """The cached Paddle model, if it is there, complete and from an acceptable source (untrained never is)."""
    rec = cache.get_ref(name).get("paddle")
    if not rec or rec.get("weights") == "random":
        return None
    if source is not None and rec.get("source") != source:
        return None
    folder = cache.models_dir() / str(rec.get("key"))
    if not _looks_intact(folder):
        return None
    return PullResult(name, "paddle", rec.get("source", "?"), rec.get("url"), rec.get("sha256"), folder, True)


def _from_inference(entry: registry.ModelEntry, opts: _Options) -> PullResult:
    pin_id = f"{entry.name}/inference"
    before = _snapshot(pin_id)
    fetched = _fetch(entry, "inference", opts)
    provenance = _provenance(entry.name, "inference", fetched, entry.artifacts["inference"])
    with _refused_on_failure(fetched, pin_id, before, provenance["url"]):
        folder = archive.extract_paddle_model(fetched.path, provenance)
    cache.set_ref(entry.name, "paddle", {"key": folder.name, **_record(provenance)})
    return PullResult(entry.name, "paddle", "inference", provenance["url"], fetched.sha256, folder, False)


def _from_weights(entry: registry.ModelEntry, opts: _Options, note: str) -> PullResult:
    from zoo.make.export import export_model

    pin_id = f"{entry.name}/weights"
    before = _snapshot(pin_id)
    fetched = _fetch(entry, "weights", opts)
    provenance = _provenance(entry.name, "weights", fetched, entry.artifacts["weights"])
    # fetch verified the blob: export records this instead of hashing it again, and writes the ref once
    origin = {**_record(provenance), "weights_sha256": fetched.sha256, "weights_url": provenance["url"]}
    with _refused_on_failure(fetched, pin_id, before, None):  # unsafe, or not this network's: do not keep them
        folder = export_model(opts.handle, weights=fetched.path, origin=origin)
    return PullResult(entry.name, "paddle", "weights", provenance["url"], fetched.sha256, folder, False, note)


# ---- ONNX model -----------------------------------------------------------------------------------------------------


def _pull_onnx(entry: registry.ModelEntry, opts: _Options) -> PullResult:
    name = entry.name
    if "onnx" not in entry.artifacts:
        raise NotCachedError(
            f"model '{name}' publishes no ONNX file; run 'zoo pull {name}' then 'zoo convert {name}' to make one"
        )
    if not opts.force and (cached := _cached_onnx(name)) is not None:
        return cached
    with _pull_lock(name, "onnx"):
        if not opts.force and (cached := _cached_onnx(name)) is not None:
            return cached
        pin_id = f"{name}/onnx"
        before = _snapshot(pin_id)
        fetched = _fetch(entry, "onnx", opts)
        provenance = _provenance(name, "onnx", fetched, entry.artifacts["onnx"])
        with _refused_on_failure(fetched, pin_id, before, provenance["url"]):
            path = _store_onnx(fetched.path, provenance)
        cache.set_ref(name, "onnx", {"key": path.parent.name, **_record(provenance), "file": path.name})
        return PullResult(name, "onnx", "onnx", provenance["url"], fetched.sha256, path, False)


def _cached_onnx(name: str) -> PullResult | None:
    """The cached published ONNX model (a local conversion does not count: pull asked for the published one)."""
    rec = cache.get_ref(name).get("onnx")
    if not rec or rec.get("source") != "onnx":
        return None
    folder = cache.onnx_dir() / str(rec.get("key"))
    if not _looks_intact(folder):
        return None
    path = folder / rec.get("file", archive.ONNX_FILE)
    return PullResult(name, "onnx", "onnx", rec.get("url"), rec.get("sha256"), path, True)


def _store_onnx(blob: Path, provenance: dict[str, Any]) -> Path:
    """The published .onnx (bare, or the one file of a tar or zip) as ``onnx/<key>/model.onnx``, checked before
    commit."""
    if _is_archive(blob, provenance["url"]):
        return archive.extract_onnx_model(blob, provenance)
    with cache.staging(cache.onnx_dir()) as stage:
        shutil.copyfile(blob, stage / archive.ONNX_FILE)
        archive.check_onnx(stage / archive.ONNX_FILE)
        return archive.commit(stage, cache.onnx_dir(), provenance) / archive.ONNX_FILE


def _is_archive(path: Path, url: str) -> bool:
    if urlsplit(url).path.lower().endswith(".onnx"):
        return False
    return archive.is_archive(path)  # a tar (maybe compressed) or a zip, judged by content


# ---- shared ---------------------------------------------------------------------------------------------------------


def _fetch(entry: registry.ModelEntry, kind: str, opts: _Options):
    from zoo.net import fetch
    from zoo.store import folders

    artifact = entry.artifacts[kind]
    folder = folders.local_folder(artifact.urls[0]) if kind == "inference" else None
    if folder is not None:  # someone's own export folder (zoo add): packed the same way every time, then fetched
        with folders.packed(folder) as tar:
            local = registry.Artifact(kind, (str(tar),), artifact.sha256, artifact.size)
            got = fetch.fetch(local, pin_id=f"{entry.name}/{kind}", mirror=opts.mirror, force=opts.force,
                              offline=opts.offline, require_hash=opts.require_hash, progress=opts.progress)  # fmt: skip
            return dataclasses.replace(got, url=str(folder))
    return fetch.fetch(
        artifact, pin_id=f"{entry.name}/{kind}", mirror=opts.mirror, force=opts.force,
        offline=opts.offline, require_hash=opts.require_hash, progress=opts.progress,
    )  # fmt: skip


def _provenance(name: str, source: str, fetched: Any, artifact: registry.Artifact) -> dict[str, Any]:
    url = fetched.url
    if fetched.reused:  # fetch names the blob itself; say where it originally came from
        url = (pins.get(f"{name}/{source}") or {}).get("url") or artifact.urls[0]
    return {"name": name, "source": source, "url": url, "sha256": fetched.sha256, "size": fetched.size}


def _record(provenance: dict[str, Any]) -> dict[str, Any]:
    return {k: provenance[k] for k in ("source", "url", "sha256", "size")}


def _looks_intact(folder: Path) -> bool:
    """Manifest present and every file there at its recorded size (a full re-hash is 'zoo cache verify')."""
    try:
        files = cache.read_json(folder / cache.MANIFEST)["files"]
        return all((folder / n).stat().st_size == rec["size"] for n, rec in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


@contextlib.contextmanager
def _pull_lock(name: str, fmt: str) -> Iterator[None]:
    """One pull of a model's format at a time; a second process waits, then finds it cached."""
    from zoo.store import locks

    with locks.hold(cache.locks_dir() / f"pull-{name}-{fmt}.lock"):
        yield


@dataclass(frozen=True)
class _Before:
    blobs: frozenset[str]  # blob file names before the fetch
    pinned: bool  # the pin id had a pin before the fetch


def _snapshot(pin_id: str) -> _Before:
    names = frozenset(os.listdir(cache.blobs_dir())) if cache.blobs_dir().is_dir() else frozenset()
    return _Before(names, pins.get(pin_id) is not None)


@contextlib.contextmanager
def _refused_on_failure(fetched: Any, pin_id: str, before: _Before, url: str | None) -> Iterator[None]:
    """Whatever goes wrong while checking downloaded content (a crafted file can raise anything: RecursionError,
    OverflowError, MemoryError ...), the blob and the pin it brought go, so a fixed file can be pulled next time.
    A full disk says nothing about the content: then the verified blob stays. ``url``: retell a ZooError about it."""
    try:
        yield
    except DiskFullError:
        raise
    except ZooError as exc:
        _forget(fetched, pin_id, before)
        if url is None:
            raise
        raise repair.refused_download(exc, fetched.path, url) from None
    except Exception as exc:
        _forget(fetched, pin_id, before)
        what = f"{type(exc).__name__}: {_first_line(exc)}"[:200]
        error = WeightsError if url is None else ArchiveError
        raise error(
            f"the file downloaded for '{pin_id}' from {url or fetched.url} could not be checked ({what}); nothing was "
            "kept — it is not a usable model: report it to whoever maintains the registry entry, or get the model "
            "another way (--mirror DIR|URL, or 'zoo bundle import FILE')"
        ) from None
    except BaseException:
        _forget(fetched, pin_id, before)
        raise


def _forget(fetched: Any, pin_id: str, before: _Before) -> None:
    """Drop the blob and pin a rejected artifact brought (a later, fixed download must not clash with the pin)."""
    if Path(fetched.path).name not in before.blobs:
        Path(fetched.path).unlink(missing_ok=True)
    if not before.pinned:
        pins.remove(pin_id)
