"""Images read at their true bit depth (issue 27 case 6 and 16): a table over the modes Pillow and tifffile
give, built here; 16-bit PNGs are written by hand (no library writes 16-bit RGB) with every PNG filter."""

from __future__ import annotations

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from percept.errors import InputError
from percept.images import load_image


def write_png(path, array: np.ndarray, color_type: int) -> None:
    """A 16-bit PNG of ``array`` (H, W[, C]) uint16, rows cycling through filters None, Sub, Up, Average, Paeth."""
    h = array.shape[0]
    raw = np.frombuffer(array.astype(">u2").tobytes(), np.uint8).reshape(h, -1).astype(np.int64)
    bpp = 2 * (array.shape[2] if array.ndim == 3 else 1)
    rows = []
    for y in range(h):
        kind, cur = y % 5, raw[y]
        prev = raw[y - 1] if y else np.zeros_like(cur)
        left = np.concatenate([np.zeros(bpp, np.int64), cur[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        p = left + prev - upleft
        pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        predicted = [0, left, prev, (left + prev) // 2, paeth][kind]
        rows.append(bytes([kind]) + ((cur - predicted) % 256).astype(np.uint8).tobytes())

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", array.shape[1], h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
                     + chunk(b"IEND", b""))  # fmt: skip


RNG = np.random.default_rng(0)
RGB16 = RNG.integers(0, 65536, (11, 7, 3)).astype(np.uint16)
RGB16[0, 0, 0] = 1000  # the value: 1000/65535, not 3/255
GREY16 = RNG.integers(0, 65536, (11, 7)).astype(np.uint16)
RGB8 = RNG.integers(0, 256, (11, 7, 3)).astype(np.uint8)


def _png16(path, array, color_type):
    write_png(path, array, color_type)


def _tiff(path, array, **kwargs):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(path, array, **kwargs)


# (name, writer(path), expected (C, H, W) in [0, 1])
CASES = [
    ("8-bit grey", lambda p: Image.fromarray(RGB8[..., 0]).save(p), RGB8[None, ..., 0] / 255),
    ("8-bit RGB", lambda p: Image.fromarray(RGB8).save(p), RGB8.transpose(2, 0, 1) / 255),
    ("8-bit RGBA", lambda p: Image.fromarray(np.dstack([RGB8, RGB8[..., :1]])).save(p), RGB8.transpose(2, 0, 1) / 255),
    ("8-bit palette", lambda p: Image.fromarray(RGB8).quantize(16).save(p), None),
    ("16-bit grey PNG", lambda p: _png16(p, GREY16, 0), GREY16[None] / 65535),
    ("16-bit grey+alpha PNG", lambda p: _png16(p, np.dstack([GREY16, GREY16[::-1]]), 4), GREY16[None] / 65535),
    ("16-bit RGB PNG", lambda p: _png16(p, RGB16, 2), RGB16.transpose(2, 0, 1) / 65535),
    ("16-bit RGBA PNG", lambda p: _png16(p, np.dstack([RGB16, RGB16[..., :1]]), 6), RGB16.transpose(2, 0, 1) / 65535),
    ("16-bit RGB TIFF", lambda p: _tiff(p, RGB16, photometric="rgb"), RGB16.transpose(2, 0, 1) / 65535),
    (
        "16-bit RGB TIFF, zlib",
        lambda p: _tiff(p, RGB16, photometric="rgb", compression="zlib"),
        RGB16.transpose(2, 0, 1) / 65535,
    ),
    (
        "16-bit RGB TIFF, big-endian",
        lambda p: _tiff(p, RGB16.astype(">u2"), photometric="rgb", byteorder=">"),
        RGB16.transpose(2, 0, 1) / 65535,
    ),
    ("16-bit grey TIFF", lambda p: _tiff(p, GREY16), GREY16[None] / 65535),
    (
        "16-bit colour PPM",
        lambda p: p.write_bytes(b"P6\n7 11\n65535\n" + RGB16.astype(">u2").tobytes()),
        RGB16.transpose(2, 0, 1) / 65535,
    ),
    (
        "10-bit colour PPM",
        lambda p: p.write_bytes(b"P6\n7 11\n1023\n" + (RGB16 >> 6).astype(">u2").tobytes()),
        (RGB16 >> 6).transpose(2, 0, 1) / 1023,
    ),
    (
        "16-bit grey PGM",
        lambda p: p.write_bytes(b"P5\n7 11\n65535\n" + GREY16.astype(">u2").tobytes()),
        GREY16[None] / 65535,
    ),
    ("float TIFF", lambda p: _tiff(p, (GREY16 / 65535).astype(np.float32)), GREY16[None] / 65535),
]


@pytest.mark.parametrize(("name", "write", "expected"), CASES, ids=[c[0] for c in CASES])
def test_every_mode_at_its_bit_depth(tmp_path, name, write, expected):
    suffix = ".tif" if "TIFF" in name else ".ppm" if "PPM" in name or "PGM" in name else ".png"
    path = tmp_path / f"image{suffix}"
    write(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # case 16: no NumPy "array is not writable" warning
        image = load_image(path)
    assert image.dtype.is_floating_point and image.is_contiguous()
    if expected is None:  # palette: the colours of its palette, as RGB
        with Image.open(path) as img:
            expected = np.asarray(img.convert("RGB")).transpose(2, 0, 1) / 255
    assert image.shape == expected.shape
    np.testing.assert_allclose(image.numpy(), expected, atol=1e-6)
    image[0, 0, 0] = 0.5  # writable


def test_int32_tiff_is_refused_even_with_small_values(tmp_path):
    """Case 6: an int32 TIFF holding 200 was read as 16-bit (0.003); the help says 32-bit integers are refused."""
    path = tmp_path / "i32.tif"
    _tiff(path, np.full((8, 8), 200, np.int32))
    with pytest.raises(InputError, match=r"i32\.tif' holds 32-bit integers"):
        load_image(path)


def test_a_folder_or_fifo_named_like_an_image(tmp_path):
    import os

    (tmp_path / "dir.png").mkdir()
    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(InputError, match=r"dir\.png': it is a folder, not an image file"):
        load_image(tmp_path / "dir.png")
    with pytest.raises(InputError, match=r"fifo\.png': it is a FIFO \(named pipe\), not an image file"):
        load_image(tmp_path / "fifo.png")
