"""Reading images and pairing the files of two folders: what the command line, the demo and the toolkit share.

Example:
    >>> x = load_image("photo.png")  # (3, H, W) float32 in [0, 1]  # doctest: +SKIP
    >>> pairs, notes = find_pairs("ref/", "dist/")  # ref/a.png with dist/a.png, ...  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from percept.errors import InputError, first_line, plural, shorten

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a float tensor in [0, 1], at the bit depth the file holds.

    Colour images (RGB, RGBA with alpha dropped, palette, CMYK, ...) come back as ``(3, H, W)``;
    grey ones (L, 1-bit, 16-bit, grey with alpha) stay ``(1, H, W)``. 8-bit data is divided by 255,
    16-bit data by 65535, for grey and colour alike (a 16-bit-per-channel RGB or RGBA PNG or TIFF, and a
    colour PPM with more than 8 bits, keep all their bits, which Pillow alone cuts to 8); float images are taken as
    they are.
    32-bit integer images are refused (their scale is unknown). EXIF orientation is applied, as image
    viewers do. Multi-frame files give their first frame.

    Args:
        path: the image file (any format Pillow reads).

    Returns:
        ``(C, H, W)`` float32 with C 1 or 3, values in [0, 1] (float images: as stored).

    Raises:
        InputError: the file is missing, a folder or another non-file, not an image Pillow can decode,
            or holds 32-bit integers; the message names it.

    Example:
        >>> load_image("photo.png").shape  # doctest: +SKIP
        torch.Size([3, 512, 512])
    """
    import torch
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    kind = file_kind(path)
    if kind == "missing":
        raise InputError(f"image file '{path}' does not exist")
    if kind != "file":
        raise InputError(f"cannot read image '{path}': it is {kind}, not an image file")
    try:
        array = _read_array(path)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"image file '{path}' does not exist") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image '{path}': {first_line(exc)}") from None
    tensor = torch.from_numpy(array)  # a fresh, writable, contiguous array: no NumPy/torch warning
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


def _read_array(path: Path) -> np.ndarray:
    """The image as ``(H, W)`` or ``(H, W, 3)`` float32 in [0, 1] (float images as stored), a new array."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        wide = _sixteen_bit_rawmode(img)
        if wide is not None:
            return _read_sixteen_bit(path, wide)
        if img.format == "PPM" and img.mode == "RGB" and _ppm_maxval(img) > 255:
            return _read_ppm_wide(path, img)
        img.load()
        bits = _tiff_bits(img)
        img = ImageOps.exif_transpose(img)
        mode = img.mode
        if mode in ("1", "L", "LA", "La"):
            return np.array(img.convert("L"), dtype=np.float32) / 255.0
        if mode.startswith("I;16") or mode == "I":
            array = np.array(img, dtype=np.float32)
            if mode == "I" and (bits == 32 or array.max(initial=0) > 65535 or array.min(initial=0) < 0):
                raise InputError(
                    f"image '{path}' holds 32-bit integers; expected 8- or 16-bit data (or float in [0, 1])"
                )
            return array / 65535.0
        if mode == "F":
            return np.array(img, dtype=np.float32)
        return np.array(img.convert("RGB"), dtype=np.float32) / 255.0


def _tiff_bits(img) -> int | None:
    """A TIFF's bits per sample (tag 258), if the file says."""
    tags = getattr(img, "tag_v2", None)
    value = tags.get(258) if tags is not None else None
    if isinstance(value, tuple):
        value = value[0] if value else None
    return int(value) if isinstance(value, int) else None


# Pillow decodes 16-bit-per-channel colour to 8 bits (the rawmode's unpacker keeps one byte of each
# sample). Decoding the same data a second time with the other byte order's unpacker gives the other
# byte; together they are the 16-bit values. The PNG/TIFF unfiltering only depends on the bits per
# pixel, which both rawmodes share.
_OTHER_BYTE = {";16B": ";16L", ";16L": ";16B", ";16N": ";16B" if sys.byteorder == "little" else ";16L"}
_WIDE_CODECS = ("zip", "raw", "libtiff")


def _tile_rawmode(tile) -> str:
    args = tile[3]
    if isinstance(args, str):
        return args
    return args[0] if isinstance(args, tuple) and args and isinstance(args[0], str) else ""


def _with_rawmode(tile, rawmode: str):
    args = tile[3]
    new = rawmode if isinstance(args, str) else (rawmode, *args[1:])
    return tile._replace(args=new) if hasattr(tile, "_replace") else (*tile[:3], new)


def _sixteen_bit_rawmode(img) -> str | None:
    """The rawmode of a 16-bit-per-channel colour or grey+alpha image Pillow would cut to 8 bits, else None."""
    if img.format not in ("PNG", "TIFF") or not img.tile:
        return None
    rawmodes = {_tile_rawmode(t) for t in img.tile}
    if len(rawmodes) != 1 or any(t[0] not in _WIDE_CODECS for t in img.tile):
        return None
    rawmode = rawmodes.pop()
    base, _, _ = rawmode.partition(";")
    return rawmode if base in ("RGB", "RGBA", "RGBX", "LA") and rawmode[-4:] in _OTHER_BYTE else None


def _read_sixteen_bit(path: Path, rawmode: str) -> np.ndarray:
    """A 16-bit colour (``(H, W, 3)``) or grey+alpha (``(H, W)``) image at 16 bits, divided by 65535."""
    import numpy as np
    from PIL import Image, ImageOps

    def decode(new_rawmode: str | None, mode: str | None = None) -> np.ndarray:
        with Image.open(path) as img:
            if new_rawmode is not None:
                if mode is not None:
                    img._mode = mode  # the same bytes unpacked as one 32-bit integer per pixel
                img.tile = [_with_rawmode(t, new_rawmode) for t in img.tile]
            img.load()
            return np.array(ImageOps.exif_transpose(img))

    if rawmode.startswith("LA"):  # grey + alpha, 2 x 16 bits: one big-endian 32-bit integer, grey on top
        try:
            packed = decode("I;32B", "I").astype(np.int64) & 0xFFFFFFFF
        except (ValueError, AttributeError, OSError) as exc:
            raise InputError(f"cannot read the 16-bit grey+alpha image '{path}' at 16 bits: {exc}") from None
        return ((packed >> 16).astype(np.float32)) / 65535.0
    high = decode(None)[..., :3].astype(np.float32)
    low = decode(rawmode[:-4] + _OTHER_BYTE[rawmode[-4:]])[..., :3].astype(np.float32)
    return (high * 256.0 + low) / 65535.0


def _ppm_maxval(img) -> int:
    args = img.tile[0][3] if len(img.tile) == 1 and img.tile[0][0] == "ppm" else None
    return int(args[1]) if isinstance(args, tuple) and len(args) > 1 and isinstance(args[1], int) else 0


def _read_ppm_wide(path: Path, img) -> np.ndarray:
    """A binary colour PPM with more than 8 bits (maxval > 255, two big-endian bytes a sample), divided by its
    maxval (Pillow reads it at 8 bits)."""
    import numpy as np

    width, height = img.size
    offset, maxval, size = img.tile[0][2], _ppm_maxval(img), width * height * 3 * 2
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(size)
    if len(data) < size:
        raise InputError(f"cannot read image '{path}': truncated ({len(data)} of {size} bytes of pixel data)")
    return np.frombuffer(data, ">u2").reshape(height, width, 3).astype(np.float32) / maxval


def file_kind(path: str | os.PathLike) -> str:
    """What ``path`` is, in words: ``"file"`` (a regular file, through links), ``"missing"``, or a phrase such as
    ``"a folder"``, ``"a FIFO (named pipe)"``, ``"a symbolic link loop"``, ``"a broken symbolic link"``.

    Example:
        >>> file_kind("/"), file_kind("/nonexistent.png")
        ('a folder', 'missing')
    """
    import errno
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return "a broken symbolic link"
        if exc.errno == errno.ENOENT:
            return "missing"
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return "file"
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next((text for test, text in kinds if test(mode)), "not a regular file")


def image_extensions() -> set[str]:
    """The file extensions Pillow reads, lower case with the dot (``".png"``, ``".jpg"``, ...)."""
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


@dataclass(frozen=True)
class ImagePair:
    """A reference file, a distorted file, and the name the output calls the pair by."""

    name: str
    ref: Path
    dist: Path


def _list_images(folder: Path, extensions: set[str]) -> tuple[dict[str, Path], dict[str, str], list[str]]:
    """A folder's image files by name; the entries named like images that are not files (name -> what they
    are: a folder, a FIFO, a symbolic link loop); the files without an image extension. Hidden entries skipped."""
    files: dict[str, Path] = {}
    others: dict[str, str] = {}
    ignored: list[str] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        kind = file_kind(entry)
        if entry.suffix.lower() not in extensions:
            if kind == "file":
                ignored.append(str(entry))
        elif kind == "file":
            files[entry.name] = entry
        else:
            others[entry.name] = kind
    return files, others, ignored


def find_pairs(ref: str | os.PathLike, dist: str | os.PathLike, *, return_unpaired: bool = False):
    """Pair two files, or the files of two folders by file name.

    In folders, hidden files and files without an image extension are left out (named in the returned
    warnings); an image present in only one folder has no partner and cannot be scored.

    Args:
        ref, dist: two image files, or two folders.
        return_unpaired: also return the images without a partner as ``(ref, dist, message)`` triples
            (the missing side is ``None``), for the caller to report as errors; otherwise they are
            named in the warnings.

    Returns:
        ``(pairs, warnings)``, pairs sorted by name; ``(pairs, warnings, unpaired)`` with ``return_unpaired``.

    Raises:
        InputError: a path does not exist, a file is paired with a folder, or no name is in both folders.
    """
    ref, dist = Path(ref), Path(dist)
    kinds = {path: file_kind(path) for path in (ref, dist)}
    for path, kind in kinds.items():
        if kind == "missing":
            raise InputError(f"'{path}' does not exist; expected two image files or two folders of images")
    if kinds[ref] == "file" and kinds[dist] == "file":
        return (
            ([ImagePair(str(dist), ref, dist)], [], []) if return_unpaired else ([ImagePair(str(dist), ref, dist)], [])
        )
    if not (kinds[ref] == kinds[dist] == "a folder"):
        described = " and ".join(f"'{p}' is {'a file' if k == 'file' else k}" for p, k in kinds.items())
        mix = "a mix: " if set(kinds.values()) <= {"file", "a folder"} else ""
        raise InputError(f"expected two image files or two folders of images, got {mix}{described}")
    extensions = image_extensions()
    (ref_files, ref_odd, ref_ignored), (dist_files, dist_odd, dist_ignored) = (
        _list_images(folder, extensions) for folder in (ref, dist)
    )
    odd, ignored = [ref_odd, dist_odd], ref_ignored + dist_ignored
    names = sorted(set(ref_files) & set(dist_files))
    notes = []
    unpaired = []
    for side, (folder, files, other, partner, partner_odd) in enumerate(
        ((ref, ref_files, dist_files, dist, odd[1]), (dist, dist_files, ref_files, ref, odd[0]))
    ):
        alone = sorted(set(files) - set(other))
        if alone and not return_unpaired:
            notes.append(f"{plural(len(alone), 'file')} only in '{folder}', not scored: {shorten(alone)}")
        for name in alone:
            pair = (str(files[name]), None) if side == 0 else (None, str(files[name]))
            why = (
                f"'{partner / name}' is {partner_odd[name]}, not an image file"
                if name in partner_odd
                else f"'{partner / name}' does not exist; files are paired by identical name"
            )
            unpaired.append((*pair, f"'{files[name]}' has no partner: {why}"))
    skipped = [f"'{d / n}' ({k})" for d, others in zip((ref, dist), odd, strict=True) for n, k in others.items()]
    if skipped:
        count = f"{len(skipped)} {'entry' if len(skipped) == 1 else 'entries'}"
        notes.append(f"{count} named like images but not image files skipped: {shorten(skipped)}")
    if ignored:
        notes.append(f"{plural(len(ignored), 'file')} without an image extension ignored: {shorten(ignored)}")
    if not names:
        raise InputError(
            f"no file name is in both '{ref}' ({plural(len(ref_files), 'image')}) and '{dist}' "
            f"({plural(len(dist_files), 'image')}); files are paired by identical name, e.g. ref/a.png with dist/a.png"
        )
    pairs = [ImagePair(n, ref_files[n], dist_files[n]) for n in names]
    return (pairs, notes, unpaired) if return_unpaired else (pairs, notes)


def load_pair(pair: ImagePair) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images of a pair as ``(1, C, H, W)`` batches; a grey one is repeated to match a colour one.

    Raises:
        InputError: a file cannot be read, or the two sizes differ (naming both files).
    """
    x, y = load_image(pair.ref), load_image(pair.dist)
    if x.shape[-2:] != y.shape[-2:]:
        raise InputError(
            f"images of a pair must have the same size: '{pair.ref}' is {x.shape[-1]}x{x.shape[-2]} (WxH) "
            f"but '{pair.dist}' is {y.shape[-1]}x{y.shape[-2]}"
        )
    if x.shape[0] != y.shape[0]:
        x, y = x.expand(3, -1, -1), y.expand(3, -1, -1)
    return x.unsqueeze(0), y.unsqueeze(0)


def resize_image(
    image: torch.Tensor,
    size: int | tuple[int, int] | None = None,
    *,
    shorter_side: int | None = None,
    crop: int | None = None,
) -> torch.Tensor:
    """Resize images in [0, 1] (bilinear, antialiased, clamped to [0, 1]) and optionally centre-crop them.

    The one resizer of percept's tools: the sweep's ``--resize``, the demo's short-side resize and crop,
    and the feature-map visualiser all use it.

    Args:
        image: ``(C, H, W)`` or ``(N, C, H, W)`` float in [0, 1].
        size: the output size: a side (square) or ``(height, width)``; ``None`` leaves it.
        shorter_side: instead of ``size``: scale so that the shorter side is this, keeping the aspect.
        crop: then cut the central ``crop`` x ``crop`` square (the image must be at least that large).

    Returns:
        The same layout as ``image``, float, values in [0, 1].

    Raises:
        InputError: both ``size`` and ``shorter_side`` given, a size below 1, or a crop larger than the image.

    Example:
        >>> import torch
        >>> resize_image(torch.rand(3, 40, 60), shorter_side=20, crop=16).shape
        torch.Size([3, 16, 16])
        >>> resize_image(torch.rand(2, 3, 40, 60), (10, 30)).shape
        torch.Size([2, 3, 10, 30])
    """
    import torch.nn.functional as F

    if size is not None and shorter_side is not None:
        raise InputError(f"expected size= or shorter_side=, not both (got {size!r} and {shorter_side!r})")
    batch = image if image.dim() == 4 else image[None]
    height, width = batch.shape[-2:]
    target: tuple[int, int] | None = None
    if size is not None:
        target = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    elif shorter_side is not None:
        scale = shorter_side / min(height, width)
        target = (max(shorter_side, round(height * scale)), max(shorter_side, round(width * scale)))
    if target is not None:
        if min(target) < 1:
            raise InputError(f"expected an output size of at least 1 pixel, got {target}")
        if target != (height, width):
            batch = F.interpolate(batch.float(), size=target, mode="bilinear", antialias=True, align_corners=False)
            batch = batch.clamp(0, 1)
    if crop is not None:
        height, width = batch.shape[-2:]
        if not 1 <= crop <= min(height, width):
            raise InputError(
                f"expected a crop of 1 to {min(height, width)} pixels for a {height}x{width} image, got {crop}"
            )
        top, left = (height - crop) // 2, (width - crop) // 2
        batch = batch[..., top : top + crop, left : left + crop]
    return batch if image.dim() == 4 else batch[0]


__all__ = ["ImagePair", "file_kind", "find_pairs", "image_extensions", "load_image", "load_pair", "resize_image"]
