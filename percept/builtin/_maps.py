"""Stage outputs that are not ``(N, C, h, w)`` maps, turned into maps: the ``to_map`` functions of built-ins.

Module-level functions (or ``functools.partial`` of them), so the backbones that use them pickle.
"""

from __future__ import annotations

import torch


def channels_last_to_map(index: int, out: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Channels-last maps ``(N, h, w, C)`` (torchvision's and timm's Swin family) to ``(N, C, h, w)``.

    Example:
        >>> channels_last_to_map(0, torch.zeros(2, 7, 5, 96), (224, 160)).shape
        torch.Size([2, 96, 7, 5])
    """
    return out.permute(0, 3, 1, 2)


def tokens_to_map(index: int, out: torch.Tensor, size: tuple[int, int], *, patch: int, prefix: int) -> torch.Tensor:
    """ViT tokens ``(N, prefix + h*w, D)`` to a map ``(N, D, h, w)``, ``h, w = H // patch, W // patch``.

    Example:
        >>> tokens_to_map(0, torch.zeros(2, 1 + 4 * 3, 8), (64, 48), patch=16, prefix=1).shape
        torch.Size([2, 8, 4, 3])
    """
    h, w = size[0] // patch, size[1] // patch
    return out[:, prefix:].transpose(1, 2).reshape(out.shape[0], out.shape[2], h, w)
