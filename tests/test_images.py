"""zoo.images: every kind of good and bad input file, written here in tmp (never copied from elsewhere)."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from zoo.errors import ImageError
from zoo.images import ACCEPTED, MAX_PIXELS, decode, expand_inputs, read_image


def street(h: int = 96, w: int = 160) -> np.ndarray:
    """A synthetic street-like RGB picture: sky gradient on top, grey road below, a few coloured boxes."""
    img = np.empty((h, w, 3), np.uint8)
    sky = np.linspace(0, 1, h // 2, dtype=np.float32)[:, None, None]
    img[: h // 2] = (np.array([110, 160, 235]) * (1 - 0.4 * sky)).astype(np.uint8)
    img[h // 2 :] = (90, 90, 95)
    img[h // 2 - 20 : h // 2 + 10, 10:40] = (180, 60, 40)  # a building
    img[h // 2 + 5 : h // 2 + 20, w // 2 : w // 2 + 30] = (20, 40, 160)  # a car
    img[h - 8 : h - 4, :: 16] = (250, 250, 250)  # lane marks
    return img


def write(path: Path, rgb: np.ndarray, *params: int) -> Path:
    bgr = rgb[..., ::-1] if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
    if rgb.ndim == 3 and rgb.shape[2] == 4:
        bgr = rgb[..., [2, 1, 0, 3]]
    ok, data = cv2.imencode(path.suffix, np.ascontiguousarray(bgr), list(params))
    assert ok
    path.write_bytes(data.tobytes())
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png_header(path: Path, w: int = 60000, h: int = 50000) -> Path:
    """A valid little PNG whose header claims w x h pixels (decoding it would need gigabytes)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    path.write_bytes(data + png_chunk(b"IEND", b""))
    return path


# ---- good inputs ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tiff", ".webp"])
def test_lossless_formats_decode_to_the_same_rgb(tmp_path: Path, ext: str):
    rgb = street()
    params = (cv2.IMWRITE_WEBP_QUALITY, 101) if ext == ".webp" else ()  # > 100: lossless WebP
    got = read_image(write(tmp_path / f"street{ext}", rgb, *params))
    assert got.dtype == np.uint8 and got.shape == (96, 160, 3) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, rgb)  # exact, and in RGB order (the sky is bluest)


def test_jpeg_decodes_close_to_the_original(tmp_path: Path):
    rgb = street()
    got = read_image(write(tmp_path / "street.jpg", rgb, cv2.IMWRITE_JPEG_QUALITY, 95))
    assert got.shape == rgb.shape
    assert np.abs(got.astype(int) - rgb).mean() < 3  # JPEG is lossy; mean error of a few levels at q95
    assert got[5, 80, 2] > got[5, 80, 0]  # RGB order: sky blue > red


def test_grayscale_is_repeated_into_three_channels_with_a_warning(tmp_path: Path):
    gray = street()[..., 1]
    for name in ("gray.png", "gray.jpg"):
        path = tmp_path / name
        write(path, gray)
        with pytest.warns(UserWarning, match="grayscale image converted to 3 channels"):
            got = read_image(path)
        assert got.shape == (96, 160, 3)
        np.testing.assert_array_equal(got[..., 0], got[..., 1])
        np.testing.assert_array_equal(got[..., 0], got[..., 2])
    np.testing.assert_array_equal(read_image_quiet(tmp_path / "gray.png")[..., 0], gray)


def read_image_quiet(path: Path) -> np.ndarray:
    return decode(path).rgb


def test_rgba_drops_alpha_keeping_colours_with_a_warning(tmp_path: Path):
    rgb = street()
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :40] = 0  # fully transparent strip: its colour is kept, not blended with anything
    path = write(tmp_path / "rgba.png", np.dstack([rgb, alpha]))
    with pytest.warns(UserWarning, match="alpha channel dropped"):
        got = read_image(path)
    np.testing.assert_array_equal(got, rgb)


def test_16_bit_is_scaled_to_8_bit_like_opencv_imread(tmp_path: Path):
    rgb = street()
    deep = rgb.astype(np.uint16) * 256 + np.uint16(200)  # high byte v, low byte 200 (rounding would give v + 1)
    path = write(tmp_path / "deep.png", deep)
    decoded = decode(path)
    assert decoded.notes == ["16-bit image scaled to 8 bits per channel"]
    np.testing.assert_array_equal(decoded.rgb, rgb)  # the high byte: (256 v + 200) >> 8 == v
    paddleseg = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]  # what PaddleSeg's reader would feed the net
    np.testing.assert_array_equal(decoded.rgb, paddleseg)


def test_jpeg_exif_orientation_is_applied_like_paddleseg_imread(tmp_path: Path):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = 255  # white left half
    jpg = write(tmp_path / "plain.jpg", rgb).read_bytes()
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)  # Orientation 6
    app1 = b"Exif\x00\x00" + b"MM\x00*" + struct.pack(">I", 8) + ifd
    path = tmp_path / "rotated.jpg"
    path.write_bytes(jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[2:])
    got = read_image(path)
    assert got.shape == (40, 20, 3)  # turned 90 degrees clockwise: the white half is now on top
    assert got[:15].mean() > 200 and got[25:].mean() < 50
    np.testing.assert_array_equal(got, cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1])


def test_decode_returns_notes_instead_of_warning(tmp_path: Path, recwarn: pytest.WarningsRecorder):
    decoded = decode(write(tmp_path / "g.png", street()[..., 0]))
    assert decoded.format == "PNG" and decoded.notes == ["grayscale image converted to 3 channels"]
    assert len(recwarn) == 0


# ---- bad inputs: one clear ImageError each ---------------------------------------------------------------------------


def _bad(tmp_path: Path, kind: str) -> Path:
    good_png = write(tmp_path / "good.png", street()).read_bytes()
    good_jpg = write(tmp_path / "good.jpg", street()).read_bytes()
    path = tmp_path / f"{kind}.png"
    if kind == "missing":
        return tmp_path / "nope.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_text("this is not a picture\nreally\n")
    elif kind == "truncated-png":
        path.write_bytes(good_png[: len(good_png) // 2])
    elif kind == "png-no-iend":
        path.write_bytes(good_png[:-12])
    elif kind == "truncated-jpeg":
        path = tmp_path / "cut.jpg"
        path.write_bytes(good_jpg[: len(good_jpg) * 2 // 3])
    elif kind == "jpeg-no-eoi":
        path = tmp_path / "cut2.jpg"
        path.write_bytes(good_jpg[:-2])
    elif kind == "huge":
        huge_png_header(path)
    elif kind == "gif":
        path = tmp_path / "anim.gif"
        path.write_bytes(b"GIF89a" + b"\0" * 40)
    elif kind == "float-tiff":
        path = tmp_path / "float.tiff"
        assert cv2.imwrite(str(path), np.random.default_rng(0).random((8, 8, 3), dtype=np.float32))
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "utf8-text":
        path.write_text("a" + "é" * 40, encoding="utf-8")  # the 64-byte head ends mid-character
    return path


BAD = {  # kind → what the message must say
    "missing": "no such file",
    "empty": "the file is empty (0 bytes)",
    "folder": "is a folder, not an image",
    "text": "this is a text file, not an image (it starts with 'this is not a picture')",
    "truncated-png": "the PNG file is truncated or corrupt",
    "png-no-iend": "the PNG file is truncated or corrupt",
    "truncated-jpeg": "the JPEG file is truncated or corrupt",
    "jpeg-no-eoi": "the JPEG file is truncated or corrupt",
    "huge": "the image is too large (50000x60000 HxW = 3000 megapixels)",
    "gif": "GIF images are not supported",
    "float-tiff": "float32 pixels are not supported",
    "binary": "not a recognised image format",
    "utf8-text": "this is a text file, not an image",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_input_gets_a_clear_per_file_message(tmp_path: Path, kind: str):
    path = _bad(tmp_path, kind)
    with pytest.raises(ImageError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")  # per file
    assert BAD[kind] in message
    if kind in ("empty", "text", "gif", "float-tiff", "binary"):
        assert ACCEPTED in message  # says what is accepted
    assert isinstance(info.value, ValueError)


def test_huge_header_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = huge_png_header(tmp_path / "huge.png", w=20000, h=20000)
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded a huge image"))
    with pytest.raises(ImageError, match="400 megapixels"):
        read_image(path)


def test_opencv_pixel_limit_is_set_before_cv2_decodes(tmp_path: Path):
    path = write(tmp_path / "s.png", street())
    code = (
        "import os, sys; from zoo import images; assert 'cv2' not in sys.modules; "
        f"images.read_image({str(path)!r}); print(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(MAX_PIXELS)


# ---- expand_inputs --------------------------------------------------------------------------------------------------


def test_expand_inputs_folders_globs_files(tmp_path: Path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for name in ("b.jpg", "a.PNG", "c.webp", "notes.txt", ".hidden.png"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.png").write_bytes(b"x")
    single = tmp_path / "one.bmp"
    single.write_bytes(b"x")
    got = expand_inputs([folder, str(single), str(tmp_path / "missing.png"), str(folder / "*.jpg")])
    assert got == [folder / "a.PNG", folder / "b.jpg", folder / "c.webp", single, tmp_path / "missing.png"]
    # missing files are kept so that reading them reports them; b.jpg from the glob is a duplicate
    assert expand_inputs([str(tmp_path / "**" / "*.png")]) == [folder / "sub" / "deep.png"]  # hidden files skipped


def test_expand_inputs_refuses_empty_folders_and_patterns(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(ImageError, match="the folder holds no images"):
        expand_inputs([tmp_path / "empty"])
    with pytest.raises(ImageError, match="no image file matches this pattern"):
        expand_inputs([str(tmp_path / "*.jpg")])
