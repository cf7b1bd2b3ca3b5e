"""What a feature map responds to: activation maximisation and the top activating patches.

Example:
    >>> bb = create_backbone("alexnet")  # doctest: +SKIP
    >>> image = activation_maximization(bb, "relu1", 12)  # (3, 128, 128) in [0, 1]  # doctest: +SKIP
    >>> patches, scores, sources = top_patches(bb, "relu1", 12, "photos/", k=9)  # doctest: +SKIP
    >>> save_grid([image, *patches], "relu1-12.png")  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from percept.backbones.base import Backbone
from percept.errors import InputError
from percept.images import image_extensions, load_image, resize_image
from percept.io import atomic_write
from percept.ops.windows import gaussian_window


def _check_channel(backbone: Backbone, tap: str, channel: int) -> str:
    info = backbone.tap_info(tap)
    if not 0 <= channel < info.channels:
        raise InputError(f"tap {tap!r} of {backbone.name} has {info.channels} channels; got channel {channel}")
    return info.name


def _device_of(backbone: Backbone) -> torch.device:
    """Where ``backbone`` runs: its first parameter's or buffer's device (the CPU for an empty module)."""
    tensor = next(itertools.chain(backbone.parameters(), backbone.buffers()), None)
    return torch.device("cpu") if tensor is None else tensor.device


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    size = max(3, int(2 * round(3 * sigma) + 1))
    g = gaussian_window(size, sigma, device=x.device, dtype=x.dtype)
    c = x.shape[1]
    x = F.conv2d(
        F.pad(x, (size // 2, size // 2, 0, 0), mode="reflect"), g.view(1, 1, 1, -1).expand(c, 1, 1, size), groups=c
    )
    return F.conv2d(
        F.pad(x, (0, 0, size // 2, size // 2), mode="reflect"), g.view(1, 1, -1, 1).expand(c, 1, size, 1), groups=c
    )


def activation_maximization(
    backbone: Backbone,
    tap: str,
    channel: int,
    *,
    size: int = 128,
    steps: int = 200,
    lr: float = 0.05,
    jitter: int = 8,
    blur_every: int = 4,
    blur_sigma: float = 0.5,
    seed: int = 0,
) -> torch.Tensor:
    """An image that makes ``channel`` of ``tap`` respond strongly (gradient ascent on the input).

    The image is ``sigmoid(logits)`` (so it stays in [0, 1]); each step shifts it by a random jitter of
    up to ``jitter`` pixels (robustness to translation), and every ``blur_every`` steps the logits
    are blurred with a Gaussian of ``blur_sigma`` (suppresses high-frequency noise). The objective is
    the channel's mean activation over space.

    Args:
        backbone: the network (frozen).
        tap: tap name or module path.
        channel: channel index in the tap.
        size: side of the square image.
        steps, lr: Adam steps and learning rate on the logits.
        jitter, blur_every, blur_sigma: the regularisation above (0 turns each off).
        seed: seeds the starting noise and the jitter.

    Returns:
        ``(3, size, size)`` float image in [0, 1].

    Example:
        >>> bb = create_backbone("alexnet", weights=None)  # doctest: +SKIP
        >>> activation_maximization(bb, "relu1", 0, steps=5).shape  # doctest: +SKIP
        torch.Size([3, 128, 128])
    """
    name = _check_channel(backbone, tap, channel)
    if size < backbone.min_size([name]):
        raise InputError(f"size {size} is below the {backbone.min_size([name])} pixels tap {name!r} needs")
    generator = torch.Generator().manual_seed(seed)
    device = _device_of(backbone)
    logits = (0.1 * torch.randn(1, 3, size, size, generator=generator)).to(device).requires_grad_(True)
    optimiser = torch.optim.Adam([logits], lr=lr)
    for step in range(steps):
        optimiser.zero_grad()
        image = torch.sigmoid(logits)
        if jitter:
            dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
            image = torch.roll(image, shifts=(dy, dx), dims=(2, 3))
        activation = backbone(image, [name])[name][:, channel].mean()
        (-activation).backward()
        optimiser.step()
        if blur_every and blur_sigma > 0 and (step + 1) % blur_every == 0:
            with torch.no_grad():
                logits.copy_(_blur(logits, blur_sigma))
    return torch.sigmoid(logits.detach())[0].cpu()


def channel_activation(backbone: Backbone, tap: str, channel: int, image: torch.Tensor) -> float:
    """Mean activation of ``channel`` at ``tap`` for one ``(3, H, W)`` image in [0, 1].

    Example:
        >>> channel_activation(bb, "relu1", 0, torch.rand(3, 64, 64))  # doctest: +SKIP
    """
    name = _check_channel(backbone, tap, channel)
    with torch.no_grad():
        return float(backbone(image[None].to(_device_of(backbone)), [name])[name][0, channel].mean())


def top_patches(
    backbone: Backbone,
    tap: str,
    channel: int,
    images: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    k: int = 9,
    patch: int | None = None,
    resize: int | None = None,
) -> tuple[list[torch.Tensor], list[float], list[str]]:
    """The ``k`` image patches where ``channel`` of ``tap`` responds most, one per image at most.

    For each image the location of the channel's largest response is mapped back to the image
    (position times the tap's stride) and a square patch centred there is cut.

    Args:
        backbone: the network.
        tap, channel: the map.
        images: a folder (every image file in it) or a list of files.
        k: patches returned.
        patch: patch side in pixels (default: 4 x the tap's stride, at least 16, at most the image).
        resize: resize images so their shorter side is this (default: as they are).

    Returns:
        ``(patches (3, p, p) each, peak activations, source files)``, strongest first.

    Example:
        >>> patches, peaks, files = top_patches(bb, "relu2", 5, "photos/", k=4)  # doctest: +SKIP
    """
    name = _check_channel(backbone, tap, channel)
    if isinstance(images, str | os.PathLike) and Path(images).is_dir():
        extensions = image_extensions()
        files = sorted(p for p in Path(images).iterdir() if p.suffix.lower() in extensions and p.is_file())
    else:
        files = [Path(p) for p in ([images] if isinstance(images, str | os.PathLike) else images)]
    if not files:
        raise InputError(f"no image files in {images!r}")
    stride = backbone.tap_info(name).reduction
    side = patch or max(16, 4 * stride)
    min_size, device = backbone.min_size([name]), _device_of(backbone)
    found = []
    for path in files:
        image = load_image(path)
        image = image.expand(3, -1, -1) if image.shape[0] == 1 else image
        if resize:
            image = resize_image(image, shorter_side=resize)
        if min(image.shape[-2:]) < min_size:
            continue
        with torch.no_grad():
            response = backbone(image[None].to(device), [name])[name][0, channel].cpu()
        peak = float(response.max())
        row, col = divmod(int(response.argmax()), response.shape[-1])
        h, w = image.shape[-2:]
        p = min(side, h, w)
        cy = min(max(int((row + 0.5) * h / response.shape[-2]), p // 2), h - (p - p // 2))
        cx = min(max(int((col + 0.5) * w / response.shape[-1]), p // 2), w - (p - p // 2))
        found.append((peak, image[:, cy - p // 2 : cy - p // 2 + p, cx - p // 2 : cx - p // 2 + p], str(path)))
    if not found:
        raise InputError(f"none of the {len(files)} images is large enough for tap {name!r}")
    found.sort(key=lambda item: -item[0])
    found = found[:k]
    return [f[1] for f in found], [f[0] for f in found], [f[2] for f in found]


def save_grid(images: Sequence[torch.Tensor], path: str | os.PathLike, *, nrow: int = 5, size: int = 96) -> Path:
    """Save ``(3, H, W)`` images in [0, 1], each resized to ``size`` x ``size``, as one PNG grid.

    Example:
        >>> save_grid([torch.rand(3, 32, 32)] * 4, "grid.png")  # doctest: +SKIP
    """
    from torchvision.utils import save_image

    if not images:
        raise InputError("no images to put in a grid")
    tiles = [resize_image(im.float(), size) for im in images]
    path = Path(path)

    with atomic_write(path, "wb") as f:
        save_image(torch.stack(tiles).clamp(0, 1), f, format="png", nrow=nrow,
                   padding=2, pad_value=1.0)  # fmt: skip
    return path
