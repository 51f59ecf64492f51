"""Reading input images: decode to RGB uint8, or say exactly why a file cannot be segmented.

Accepted: PNG, JPEG, BMP, TIFF and WebP files of at most :data:`MAX_PIXELS` pixels. zoo reads the bytes itself,
checks the header (format, size, truncation) and only then hands them to ``cv2.imdecode`` — ``cv2.imread`` returns
``None`` without saying why. What zoo does with images that are not plain 8-bit RGB (matching what PaddleSeg's
``cv2.imread(path, IMREAD_COLOR)`` feeds the network, but saying so):

* grayscale           → the gray channel is repeated into R, G and B, with a warning;
* with alpha (RGBA)   → the alpha channel is dropped (transparent pixels keep their colour), with a warning;
* 16 bits per channel → scaled to 8 bits by keeping the high byte (``v >> 8``, as OpenCV does), with a warning;
* float or other depths, GIF, HEIC, text, empty, truncated and oversized files → :class:`~zoo.errors.ImageError`.
"""

from __future__ import annotations

import glob
import os
import re
import struct
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import ImageError, ImageTooLargeError

if TYPE_CHECKING:  # numpy stays out of `zoo --help`
    import numpy as np

MAX_SIDE = 8192
MAX_PIXELS = MAX_SIDE * MAX_SIDE  # 67 MP: a float32 input tensor alone is then 800 MB
MAX_FILE_BYTES = 512 << 20  # an uncompressed 32-bit BMP at MAX_PIXELS is 256 MiB
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
ACCEPTED = (
    f"zoo reads PNG, JPEG, BMP, TIFF and WebP images (8 or 16 bits, gray, RGB or RGBA) "
    f"up to {MAX_PIXELS // 1_000_000} megapixels ({MAX_SIDE}x{MAX_SIDE})"
)



class ImageWarning(UserWarning):
    """An image was converted on reading (grayscale, alpha, 16 bit): it still runs, but a user should know."""


@dataclass
class Decoded:
    """A decoded image and what was done to make it RGB uint8."""

    rgb: np.ndarray  # H x W x 3 uint8, RGB order
    format: str  # "PNG", "JPEG", "BMP", "TIFF" or "WEBP"
    notes: list[str] = field(default_factory=list)  # conversions a user should know about (grayscale, alpha, 16 bit)


@dataclass
class _Header:
    format: str
    width: int | None = None  # None: the header does not say (cv2's own pixel limit still applies)
    height: int | None = None
    alpha: bool = False


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode one image file to RGB uint8 ``[H, W, 3]``; conversions are reported with ``warnings.warn``."""
    decoded = decode(path)
    for note in decoded.notes:
        warnings.warn(f"{path}: {note}", ImageWarning, stacklevel=2)
    return decoded.rgb


def decode(path: str | os.PathLike[str]) -> Decoded:
    """Decode one image file; conversions are returned as notes instead of warnings (safe to call from threads)."""
    path = Path(path)
    return decode_bytes(path, _read_bytes(path))


def decode_bytes(name: str | os.PathLike[str], data: bytes) -> Decoded:
    """Decode an image's bytes read elsewhere (e.g. object storage through fsspec); ``name`` is used in messages."""
    path = name if isinstance(name, Path) else str(name)  # a URI stays a URI ("memory://a.png", not "memory:/a.png")
    if not data:
        raise ImageError(f"{path}: the file is empty (0 bytes); {ACCEPTED}")
    header = _sniff(path, data)  # type: ignore[arg-type]
    if header.width is not None and header.height is not None:
        _check_size(path, header.width, header.height)  # type: ignore[arg-type]
    return _decode_bytes(path, data, header)  # type: ignore[arg-type]


def check_header(name: str | os.PathLike[str], data: bytes) -> None:
    """ImageError unless ``data`` is a format zoo reads whose header stays within MAX_PIXELS: checked before any
    decoder allocates (label maps too: a 50000x50000 PNG header must not reach OpenCV)."""
    path = name if isinstance(name, Path) else str(name)
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{path}: the file is too large ({len(data) >> 20} MiB); {ACCEPTED}")
    if not data:
        raise ImageError(f"{path}: the file is empty (0 bytes); {ACCEPTED}")
    header = _sniff(path, data)  # type: ignore[arg-type]
    if header.width is not None and header.height is not None:
        _check_size(path, header.width, header.height)  # type: ignore[arg-type]


def _read_bytes(path: Path) -> bytes:
    try:
        if path.is_dir():
            raise ImageError(f"{path}: is a folder, not an image; pass image files, or give the folder to 'zoo run'")
        size = path.stat().st_size
        if size == 0:
            raise ImageError(f"{path}: the file is empty (0 bytes); {ACCEPTED}")
        if size > MAX_FILE_BYTES:
            raise ImageTooLargeError(f"{path}: the file is too large ({size >> 20} MiB); {ACCEPTED}")
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied; check the file's permissions") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read the file ({exc.strerror or exc})") from None


def _check_size(path: Path, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"{path}: the header gives an empty image ({height}x{width} HxW); the file is corrupt")
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{path}: the image is too large ({height}x{width} HxW = {width * height / 1e6:.0f} megapixels); "
            f"zoo segments images up to {MAX_PIXELS // 1_000_000} megapixels — downscale or tile it first"
        )


# ---- headers: format, size, alpha, truncation -----------------------------------------------------------------------


def _sniff(path: Path, data: bytes) -> _Header:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(path, data)
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(path, data)
    if data.startswith(b"BM") and len(data) >= 26:
        return _bmp(path, data)
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(path, data)
    raise ImageError(f"{path}: {_what_is(data)}; {ACCEPTED}")


def _what_is(data: bytes) -> str:
    """A short description of a file that is not an accepted image."""
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF images are not supported; convert it to PNG"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "HEIC/AVIF images are not supported; convert it to JPEG or PNG"
    text = None
    for cut in range(4):  # the first 64 bytes may end inside a multi-byte character
        try:
            text = data[: 64 - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        preview = text.strip().splitlines()[0][:30] if text.strip() else ""
        return f"this is a text file, not an image (it starts with {preview!r})"
    return f"not a recognised image format (it starts with bytes {data[:8].hex(' ')})"


def _truncated(path: Path, fmt: str) -> ImageError:
    return ImageError(f"{path}: the {fmt} file is truncated or corrupt (it ends before the image data does); "
                      "copy or download it again")  # fmt: skip


def _png(path: Path, data: bytes) -> _Header:
    """Walk the chunks: IHDR first, IEND last; a file cut short never reaches IEND."""
    pos, header = 8, None
    while True:
        if pos + 8 > len(data):
            raise _truncated(path, "PNG")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if pos + 12 + length > len(data):
            raise _truncated(path, "PNG")
        if header is None:
            if kind != b"IHDR" or length < 13:
                raise ImageError(f"{path}: corrupt PNG (no IHDR header chunk); copy or download it again")
            width, height, depth, color = struct.unpack(">IIBB", data[pos + 8 : pos + 18])
            if depth not in (1, 2, 4, 8, 16):
                raise ImageError(f"{path}: corrupt PNG (bit depth {depth})")
            header = _Header("PNG", width, height, alpha=color in (4, 6))
        if kind == b"IEND":
            return header
        pos += 12 + length


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # in entropy-coded data: not stuffing, not a restart


def _jpeg(path: Path, data: bytes) -> _Header:
    """Walk the markers to EOI; the frame header gives the size, a cut file never reaches EOI."""
    pos, header = 2, None
    n = len(data)
    while pos + 1 < n:
        if data[pos] != 0xFF:
            raise ImageError(f"{path}: corrupt JPEG (bad marker at byte {pos}); copy or download it again")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            if header is None:
                raise ImageError(f"{path}: corrupt JPEG (no frame header); copy or download it again")
            return header
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            pos += 2
            continue
        if pos + 4 > n:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if end > n:
            break
        if marker in _SOF and header is None and length >= 8:
            precision, height, width, components = struct.unpack(">BHHB", data[pos + 4 : pos + 10])
            if precision != 8:
                raise ImageError(f"{path}: {precision}-bit JPEG is not supported; {ACCEPTED}")
            header = _Header("JPEG", width, height or None)  # height 0: given later by a DNL marker
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
            found = _NEXT_MARKER.search(data, end)
            if found is None:
                break
            pos = found.start()
        else:
            pos = end
    raise _truncated(path, "JPEG")


def _bmp(path: Path, data: bytes) -> _Header:
    declared = struct.unpack("<I", data[2:6])[0]
    width, height = struct.unpack("<ii", data[18:26])
    if declared and len(data) < declared:
        raise _truncated(path, "BMP")
    return _Header("BMP", abs(width), abs(height))


def _tiff(data: bytes) -> _Header:
    """Width and length from the first IFD (classic TIFF); cv2 reports anything unusual itself."""
    order = "<" if data[:2] == b"II" else ">"
    header = _Header("TIFF")
    try:
        (ifd,) = struct.unpack(order + "I", data[4:8])
        (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
        for i in range(count):
            entry = data[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
            tag, kind = struct.unpack(order + "HH", entry[:4])
            value = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
            if tag == 256:
                header.width = value
            elif tag == 257:
                header.height = value
            elif tag == 338:  # ExtraSamples: alpha
                header.alpha = True
    except struct.error:  # short or odd IFD: leave the checks to the decoder
        pass
    return header


def _webp(path: Path, data: bytes) -> _Header:
    (riff_size,) = struct.unpack("<I", data[4:8])
    if len(data) < 8 + riff_size or len(data) < 30:
        raise _truncated(path, "WebP")
    chunk = data[12:16]
    if chunk == b"VP8X":
        flags = data[20]
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return _Header("WEBP", width, height, alpha=bool(flags & 0x10))
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return _Header("WEBP", 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF), alpha=bool((bits >> 28) & 1))
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return _Header("WEBP", width & 0x3FFF, height & 0x3FFF)
    return _Header("WEBP")


# ---- decoding -------------------------------------------------------------------------------------------------------


def _cv2():
    """cv2, with its own pixel limit matched to zoo's (it only takes effect if cv2 was not imported yet)."""
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))
    import cv2

    return cv2


def _decode_bytes(path: Path, data: bytes, header: _Header) -> Decoded:
    import numpy as np

    cv2 = _cv2()
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        # ANYCOLOR|ANYDEPTH: gray stays 1 channel and 16 bit stays 16 bit (so both can be reported), alpha is
        # dropped, and JPEG EXIF orientation is applied — like PaddleSeg's cv2.imread(IMREAD_COLOR)
        image = cv2.imdecode(buf, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1]
        if "CV_IO_MAX_IMAGE_PIXELS" in reason:
            raise ImageTooLargeError(f"{path}: the image is too large; {ACCEPTED}") from None
        raise ImageError(f"{path}: OpenCV cannot decode this {header.format} file ({reason}); {ACCEPTED}") from None
    if image is None or image.size == 0:
        raise ImageError(f"{path}: this {header.format} file is corrupt or uses an unsupported variant; {ACCEPTED}")
    if header.width is None or header.height is None:
        _check_size(path, image.shape[1], image.shape[0])
    notes: list[str] = []
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
        notes.append("16-bit image scaled to 8 bits per channel")
    elif image.dtype != np.uint8:
        raise ImageError(f"{path}: {image.dtype} pixels are not supported; {ACCEPTED}")
    if header.alpha:
        notes.append("alpha channel dropped (transparent pixels keep their colour)")
    if image.ndim == 2 or image.shape[2] == 1:
        notes.append("grayscale image converted to 3 channels")
        rgb = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    elif image.shape[2] == 3:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:  # never produced with IMREAD_ANYCOLOR, but cheap to be sure
        rgb = np.ascontiguousarray(image[:, :, 2::-1])
    return Decoded(rgb, header.format, notes)


# ---- inputs on the command line -------------------------------------------------------------------------------------


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in EXTENSIONS and not path.name.startswith(".")


def expand_inputs(items: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given; folders as the images directly inside them; patterns as the images they match (sorted).

    A file that does not exist is kept, so that reading it reports it with the other per-file failures; a folder
    without images or a pattern matching nothing raises ImageError at once. Duplicates are dropped.
    """
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if isinstance(item, str) and "://" in item and not path.exists():  # Path() would make s3://b/x "s3:/b/x"
            raise ImageError(f"{item}: a URI; this engine reads local files, images and folders — copy the files "
                             "here, or run with --engine ray, which reads s3://, gs://, ... through fsspec")
        if path.is_dir():
            images = _folder_images(path)
            if not images:
                raise ImageError(f"{path}: the folder holds no images ({', '.join(EXTENSIONS)})")
            found += images
        elif not path.exists() and glob.has_magic(str(item)):
            matches = [Path(m) for m in sorted(glob.glob(str(item), recursive=True))]
            images = [m for m in matches if m.is_file() and is_image_name(m)]
            if not images:
                raise ImageError(f"{item}: no image file matches this pattern ({', '.join(EXTENSIONS)})")
            found += images
        else:
            found.append(path)
    seen: set[Path] = set()
    unique = []
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_name(p))
