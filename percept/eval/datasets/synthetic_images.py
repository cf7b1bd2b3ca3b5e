"""The images and files of the synthetic 2AFC and JND sets (:mod:`percept.eval.datasets.synthetic`): smooth
random textures and distortions scaled to a given RMS change, made with torch ops from one seeded generator,
and the files of each 2AFC layout.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> ref, p0, p1 = triplets(8, 32, g)
    >>> ref.shape, bool(((p0 >= 0) & (p0 <= 1)).all())
    (torch.Size([8, 3, 32, 32]), True)
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

DISTORTIONS = ("noise", "blur", "colour", "contrast", "blocks", "grating")
"""The distortion kinds the synthetic images are made with."""
SET_NAME = "synthetic"
"""The ``<set>`` of the BAPPS-style folders the synthetic sets are written in (``2afc/train/synthetic``)."""


def textures(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` smooth random colour textures: noise at 4, 8, 16, ... pixels upsampled bicubically and summed.

    Args:
        n: how many.
        size: side in pixels (>= 8).
        generator: the seeded torch generator drawn from.

    Returns:
        ``(n, 3, size, size)`` float32 in [0, 1].

    Example:
        >>> textures(2, 32, torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 32, 32])
    """
    image = torch.zeros(n, 3, size, size)
    cells = 4
    while cells <= size // 2:
        grey = torch.randn(n, 1, cells, cells, generator=generator)
        colour = 0.6 * torch.randn(n, 3, cells, cells, generator=generator)
        up = F.interpolate(grey + colour, size=(size, size), mode="bicubic", align_corners=False)
        image = image + up * (4.0 / cells) ** 0.5
        cells *= 2
    image = image - image.mean(dim=(1, 2, 3), keepdim=True)
    image = image / image.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    mean = 0.3 + 0.4 * torch.rand(n, 3, 1, 1, generator=generator)
    spread = 0.1 + 0.1 * torch.rand(n, 1, 1, 1, generator=generator)
    return (mean + spread * image).clamp(0.0, 1.0)


def _box_blur(x: torch.Tensor, passes: int = 2) -> torch.Tensor:
    for _ in range(passes):
        x = F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), 5, stride=1)
    return x


def _blocks(x: torch.Tensor, block: int = 4) -> torch.Tensor:
    size = x.shape[-2:]
    return F.interpolate(F.avg_pool2d(x, block, ceil_mode=True), size=size, mode="nearest")


def _gratings(n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, 3, height, width)`` sinusoidal gratings of random orientation, period (3..16 px), phase and colour."""
    angle = math.pi * torch.rand(n, 1, 1, 1, generator=generator)
    period = 3.0 + 13.0 * torch.rand(n, 1, 1, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(n, 1, 1, 1, generator=generator)
    colour = torch.randn(n, 3, 1, 1, generator=generator)
    colour = colour / colour.norm(dim=1, keepdim=True).clamp_min(1e-6)
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")  # fmt: skip
    along = xx * torch.cos(angle) + yy * torch.sin(angle)
    return colour * torch.sin(2 * math.pi * along / period + phase)


def distort(x: torch.Tensor, kinds: torch.Tensor, rms: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Distort each image by one of :data:`DISTORTIONS`, its change scaled to a given RMS.

    Every distortion adds a change ``delta`` to the image (noise; blur or blocks minus the image; a
    colour shift in a random direction; a contrast stretch or squeeze; a grating of random orientation,
    period, phase and colour), scaled so that its root mean square is ``rms`` (blur and blocks by at
    most twice their full effect), then clipped to [0, 1].

    Args:
        x: ``(N, 3, H, W)`` images in [0, 1].
        kinds: ``(N,)`` indices into :data:`DISTORTIONS`.
        rms: ``(N,)`` the RMS change per image (before clipping), ``>= 0``; 0 leaves the image as it is.
        generator: the seeded torch generator the random parts are drawn from.

    Returns:
        ``(N, 3, H, W)`` in [0, 1].

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = 0.25 + 0.5 * torch.rand(2, 3, 16, 16)
        >>> y = distort(x, torch.tensor([0, 5]), torch.tensor([0.05, 0.05]), g)
        >>> [round(v, 3) for v in (y - x).pow(2).mean(dim=(1, 2, 3)).sqrt().tolist()]
        [0.05, 0.05]
    """
    n = x.shape[0]
    direction = torch.randn(n, 3, 1, 1, generator=generator)
    stretch = torch.where(torch.rand(n, 1, 1, 1, generator=generator) < 0.5, -1.0, 1.0)
    deltas = {
        "noise": torch.randn(x.shape, generator=generator),
        "blur": _box_blur(x) - x,
        "colour": direction.expand_as(x),
        "contrast": stretch * (x - x.mean(dim=(2, 3), keepdim=True)),
        "blocks": _blocks(x) - x,
        "grating": _gratings(n, x.shape[-2], x.shape[-1], generator),
    }
    delta = torch.zeros_like(x)
    for index, name in enumerate(DISTORTIONS):
        mask = kinds == index
        delta[mask] = deltas[name][mask]
    size = delta.pow(2).mean(dim=(1, 2, 3)).sqrt()
    gain = rms.float() / size.clamp_min(1e-8)
    bounded = (kinds == DISTORTIONS.index("blur")) | (kinds == DISTORTIONS.index("blocks"))
    gain = torch.where(bounded, gain.clamp(max=2.0), gain)
    return (x + gain.view(n, 1, 1, 1) * delta).clamp(0.0, 1.0)


def quantise(x: torch.Tensor) -> torch.Tensor:
    """What an image in [0, 1] reads back as from an 8-bit PNG: ``round(255 x) / 255``.

    Example:
        >>> quantise(torch.tensor([0.1234])).mul(255).tolist()
        [31.0]
    """
    return (x * 255.0).round() / 255.0


def triplets(n: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` references with two distortions each, as :func:`make_2afc` writes them (8-bit quantised).

    Half the triplets distort the reference twice by the same kind of change, one whose effect depends
    on a random direction (noise, a colour shift, a grating), at the same RMS: which is closer then
    depends on which channels an observer weighs, not on how much changed. The other half draw two
    kinds at random, at RMS within 30% of each other. The RMS of a triplet is drawn in [0.02, 0.10].

    Returns:
        ``(ref, p0, p1)``, each ``(n, 3, size, size)`` in [0, 1].

    Example:
        >>> ref, p0, p1 = triplets(4, 32, torch.Generator().manual_seed(0))
        >>> ref.shape == p0.shape == p1.shape == (4, 3, 32, 32)
        True
    """
    ref = quantise(textures(n, size, generator))
    level = 0.02 + 0.08 * torch.rand(n, generator=generator)
    same_kind = torch.rand(n, generator=generator) < 0.5
    directional = torch.tensor([DISTORTIONS.index(k) for k in ("noise", "colour", "grating")])
    pick = directional[torch.randint(len(directional), (n,), generator=generator)]
    kinds = [torch.where(same_kind, pick, torch.randint(len(DISTORTIONS), (n,), generator=generator)) for _ in "01"]
    spread = [torch.where(same_kind, 1.0, 1.0 + 0.3 * (2 * torch.rand(n, generator=generator) - 1)) for _ in "01"]
    p0 = quantise(distort(ref, kinds[0], level * spread[0], generator))
    p1 = quantise(distort(ref, kinds[1], level * spread[1], generator))
    return ref, p0, p1


def save_png(image: torch.Tensor, path: str | os.PathLike) -> None:
    """Write a ``(3, H, W)`` image in [0, 1] as an 8-bit PNG (folders made as needed).

    Example:
        >>> save_png(torch.rand(3, 16, 16), "/tmp/a.png")  # doctest: +SKIP
    """
    import numpy as np
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # numpy, not torch: one small image at a time, where torch's thread pool costs more than the work
    array = np.rint(np.clip(image.detach().cpu().numpy(), 0.0, 1.0) * 255.0).astype(np.uint8)
    Image.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0))).save(path)


def write_2afc_layout(layout: str, root: Path, ref, p0, p1, judge, splits: list[str], judges: int) -> Path:
    """Write triplets in a 2AFC layout the readers know: ``"bapps"``, ``"nights"`` or ``"csv"``.

    Args:
        layout: the layout (see :func:`percept.eval.datasets.synthetic.make_2afc`).
        root: the folder written into.
        ref, p0, p1: ``(N, 3, H, W)`` images in [0, 1].
        judge: ``(N,)`` fractions of people who chose ``p1``.
        splits: ``N`` split names (``train``, ``val``).
        judges: people per triplet (NIGHTS' ``votes``).

    Returns:
        The path to give the reader.

    Example:
        >>> write_2afc_layout("csv", Path("syn"), ref, p0, p1, judge, ["train"] * len(ref), 5)  # doctest: +SKIP
        PosixPath('syn/triplets.csv')
    """
    writer = {"bapps": _write_bapps, "nights": _write_nights, "csv": _write_csv}[layout]
    return writer(root, ref, p0, p1, judge, splits, judges)


def _write_bapps(root: Path, ref, p0, p1, judge, splits: list[str], judges: int) -> Path:
    import numpy as np

    counters: dict[str, int] = {}
    for i, split in enumerate(splits):
        k = counters[split] = counters.get(split, -1) + 1
        folder = root / "2afc" / split / SET_NAME
        for key, images in (("ref", ref), ("p0", p0), ("p1", p1)):
            save_png(images[i], folder / key / f"{k:06d}.png")
        (folder / "judge").mkdir(parents=True, exist_ok=True)
        np.save(folder / "judge" / f"{k:06d}.npy", np.array([float(judge[i])]))
    return root


def _write_nights(root: Path, ref, p0, p1, judge, splits: list[str], judges: int) -> Path:
    import pandas as pd

    base = root / "nights"
    rows = []
    for i, split in enumerate(splits):
        folder, stem = f"{i // 1000:03d}", f"{i % 1000:03d}"
        paths = {"ref_path": f"ref/{folder}/{stem}.png", "left_path": f"distort/{folder}/{stem}_0.png",
                 "right_path": f"distort/{folder}/{stem}_1.png"}  # fmt: skip
        for key, images in (("ref_path", ref), ("left_path", p0), ("right_path", p1)):
            save_png(images[i], base / paths[key])
        right = float(judge[i])
        rows.append({"id": i, "left_vote": 1.0 - right, "right_vote": right, "votes": judges, **paths,
                     "split": split, "is_imagenet": False})  # fmt: skip
    pd.DataFrame(rows).to_csv(base / "data.csv", index=False)
    return base


def _write_csv(root: Path, ref, p0, p1, judge, splits: list[str], judges: int) -> Path:
    import pandas as pd

    rows = []
    for i, split in enumerate(splits):
        names = {key: f"{key}/{i:06d}.png" for key in ("ref", "p0", "p1")}
        for key, images in (("ref", ref), ("p0", p0), ("p1", p1)):
            save_png(images[i], root / names[key])
        rows.append({**names, "judge": float(judge[i]), "split": split})
    path = root / "triplets.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
