"""Where images come from: local files, folders and globs (as ``zoo run`` expands them), and fsspec URIs.

``s3://``, ``gs://``, ``file://`` ... go through fsspec (the ecosystem's convention; installed with ``zoo[ray]``).
Names stay strings, so a URI keeps its ``//`` (``Path`` would fold it).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import EngineError, ImageError

if TYPE_CHECKING:
    import numpy as np

INSTALL = "pip install 'zoo[ray]'"


def is_uri(item: str | os.PathLike[str]) -> bool:
    """Whether an input names a URI (``scheme://...``) rather than a local path."""
    return isinstance(item, str) and "://" in item


def expand(inputs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Local files, folders and globs (as ``zoo run`` expands them) and fsspec URIs → one list, duplicates dropped."""
    from zoo import images

    found: list[str] = []
    for item in inputs:
        found += _expand_uri(str(item)) if is_uri(item) else [str(p) for p in images.expand_inputs([item])]
    seen: set[str] = set()
    unique = []
    for name in found:
        key = name if is_uri(name) else str(Path(name).resolve())
        if key not in seen:
            seen.add(key)
            unique.append(name)
    return unique


def fsspec_module() -> Any:
    try:
        import fsspec
    except ImportError:
        raise EngineError(f"URI inputs need fsspec, which is not installed; run: {INSTALL}") from None
    return fsspec


def _filesystem(uri: str) -> tuple[Any, str]:
    """fsspec's filesystem for ``uri``: a protocol fsspec does not know (``bogus://``) or whose package is missing
    (``s3://`` without s3fs) is a one-line refusal saying what to install or fix."""
    fsspec = fsspec_module()
    scheme = uri.split("://", 1)[0]
    try:
        return fsspec.core.url_to_fs(uri)
    except ImportError as exc:
        raise EngineError(f"{uri}: reading {scheme}:// needs a package that is not installed ({exc}); install it, "
                          "or copy the files to a local folder") from None  # fmt: skip
    except (ValueError, TypeError) as exc:
        raise ImageError(f"{uri}: fsspec does not know the protocol '{scheme}' ({exc}); give a local path, or a "
                         "URI such as s3://, gs://, http:// or file://") from None  # fmt: skip


def _expand_uri(uri: str) -> list[str]:
    from zoo import images

    fs, path = _filesystem(uri)
    try:
        if fs.isdir(path):
            names = sorted(p for p in fs.ls(path, detail=False) if fs.isfile(p))
        elif glob.has_magic(path):
            names = sorted(p for p in fs.glob(path) if fs.isfile(p))
        else:
            return [fs.unstrip_protocol(path)]  # missing: reported per file, with the other failures
    except OSError as exc:
        raise ImageError(f"{uri}: cannot list it ({exc}); check the URI and your credentials") from None
    found = [fs.unstrip_protocol(p) for p in names if images.is_image_name(Path(p))]
    if not found:
        raise ImageError(f"{uri}: no image file there ({', '.join(images.EXTENSIONS)})")
    return found


def read_bytes(uri: str) -> bytes:
    """A URI's bytes through fsspec; ImageError if it cannot be read or is too large."""
    from zoo import images

    fs, path = _filesystem(uri)
    try:
        with fs.open(path, "rb") as f:
            data = f.read(images.MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ImageError(f"{uri}: no such file") from None
    except OSError as exc:
        raise ImageError(f"{uri}: cannot read the file ({exc})") from None
    if len(data) > images.MAX_FILE_BYTES:
        raise ImageError(f"{uri}: the file is too large; {images.ACCEPTED}")
    return data


def decode(name: str, data: bytes | None) -> Any:
    """A Decoded image: local paths exactly as the local engine reads them, URIs through fsspec (or inlined bytes)."""
    from zoo import images

    if data is not None:
        return images.decode_bytes(name, data)
    return images.decode_bytes(name, read_bytes(name)) if is_uri(name) else images.decode(Path(name))


def read_label(name: str, size: tuple[int, int]) -> np.ndarray:
    """A label map file (PNG of class ids, 8 or 16 bit, local or a URI) as stored; ``size`` (H, W) is its image's."""
    import cv2
    import numpy as np

    data = read_bytes(name) if is_uri(name) else Path(name).read_bytes()
    labels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2:
        raise ImageError(f"{name}: not a single-channel label map (PNG of class ids)")
    if labels.shape != tuple(size):
        raise ImageError(f"{name}: the label map is {labels.shape[0]}x{labels.shape[1]} (HxW), its image {size[0]}x{size[1]}")
    return labels
