"""A Paddle model folder (someone's own export) as a deterministic tar, so it enters the cache the way a download does.

``zoo add NAME FOLDER`` and a later re-pull of that entry pack the folder's model files — only the names a model
archive may hold (:func:`zoo.store.archive.is_paddle_file`), sorted, with zeroed times and owners — so the same files
always give the same bytes and the same sha256: the registry's pin holds the folder to what was added, and the tar
goes through the one archive policy and program/params check every pull uses.
"""

from __future__ import annotations

import contextlib
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

from zoo.errors import ArchiveError
from zoo.store import archive, cache

PACKED = "model-folder.tar"


@contextlib.contextmanager
def packed(folder: Path) -> Iterator[Path]:
    """The folder's model files as a tar in a staging folder of the cache, removed afterwards."""
    with cache.staging(cache.models_dir()) as stage:
        yield pack(folder, stage / PACKED)


def pack(folder: Path, dest: Path) -> Path:
    """Write ``folder``'s model files into the tar ``dest``; links and special files are refused, as in archives."""
    names = []
    for path in sorted(folder.iterdir()):
        if not archive.is_paddle_file(path.name):
            continue
        mode = path.lstat().st_mode
        if not stat.S_ISREG(mode):
            raise ArchiveError(f"{path} is a {'link' if stat.S_ISLNK(mode) else 'special file'}, not a regular file; "
                               "copy the real file into the folder and run 'zoo add' again")  # fmt: skip
        names.append(path.name)
    if not names:
        raise ArchiveError(f"{folder} holds no model files (model.json or model.pdmodel, model.pdiparams, deploy.yaml); "
                           "give the folder PaddleSeg's tools/export.py wrote")  # fmt: skip
    with tarfile.open(dest, "w", format=tarfile.USTAR_FORMAT) as tf:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = (folder / name).stat().st_size
            info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, 0, "", ""
            with open(folder / name, "rb") as f:
                tf.addfile(info, f)
    return dest


def local_folder(url: str) -> Path | None:
    """The folder a ``file://`` URL or plain path names, or None (a URL, or a file)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme.lower() in ("http", "https"):
        return None
    path = Path(unquote(parts.path) if parts.scheme.lower() == "file" else url).expanduser()
    return path if path.is_dir() else None
