"""Reading images and pairing the files of two folders: what the command line, the demo and the toolkit share.

Example:
    >>> x = load_image("photo.png")  # (3, H, W) float32 in [0, 1]  # doctest: +SKIP
    >>> pairs, notes = find_pairs("ref/", "dist/")  # ref/a.png with dist/a.png, ...  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from percept.errors import InputError, first_line, plural, shorten

if TYPE_CHECKING:  # pragma: no cover
    import torch


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a float tensor in [0, 1].

    Colour images (RGB, RGBA with alpha dropped, palette, CMYK, ...) come back as ``(3, H, W)``;
    grey ones (L, 1-bit, 16-bit) stay ``(1, H, W)``. 8-bit data is divided by 255, 16-bit by 65535.
    EXIF orientation is applied, as image viewers do. Multi-frame files give their first frame.

    Args:
        path: the image file (any format Pillow reads).

    Returns:
        ``(C, H, W)`` float32 with C 1 or 3, values in [0, 1].

    Raises:
        InputError: the file is missing or not an image Pillow can decode; the message names it.

    Example:
        >>> load_image("photo.png").shape  # doctest: +SKIP
        torch.Size([3, 512, 512])
    """
    import numpy as np
    import torch
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            mode = img.mode
            if mode in ("1", "L", "LA", "La"):
                array = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
            elif mode.startswith("I;16") or mode == "I":
                array = np.asarray(img, dtype=np.float32)
                if mode == "I" and array.max(initial=0) > 65535:
                    raise InputError(f"image '{path}' holds 32-bit integers; expected 8- or 16-bit data")
                array = array / 65535.0
            elif mode == "F":
                array = np.asarray(img, dtype=np.float32)
            else:
                array = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"image file '{path}' does not exist") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image '{path}': {first_line(exc)}") from None
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


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
    for path in (ref, dist):
        if not path.exists():
            raise InputError(f"'{path}' does not exist; expected two image files or two folders of images")
    if ref.is_file() and dist.is_file():
        return (
            ([ImagePair(str(dist), ref, dist)], [], []) if return_unpaired else ([ImagePair(str(dist), ref, dist)], [])
        )
    if not (ref.is_dir() and dist.is_dir()):
        kinds = " and ".join(f"'{p}' is a {'folder' if p.is_dir() else 'file'}" for p in (ref, dist))
        raise InputError(f"expected two image files or two folders of images, got a mix: {kinds}")
    extensions = image_extensions()
    listed: list[dict[str, Path]] = []
    ignored: list[str] = []
    for folder in (ref, dist):
        files = {}
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            if entry.suffix.lower() in extensions:
                files[entry.name] = entry
            else:
                ignored.append(str(entry))
        listed.append(files)
    ref_files, dist_files = listed
    names = sorted(set(ref_files) & set(dist_files))
    notes = []
    unpaired = []
    for folder, files, other, partner in ((ref, ref_files, dist_files, dist), (dist, dist_files, ref_files, ref)):
        alone = sorted(set(files) - set(other))
        if alone and not return_unpaired:
            notes.append(f"{plural(len(alone), 'file')} only in '{folder}', not scored: {shorten(alone)}")
        for name in alone:
            pair = (str(files[name]), None) if folder is ref else (None, str(files[name]))
            unpaired.append((*pair, f"'{files[name]}' has no partner: '{partner / name}' does not exist; "
                                    "files are paired by identical name"))  # fmt: skip
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


__all__ = ["ImagePair", "find_pairs", "image_extensions", "load_image", "load_pair", "resize_image"]
