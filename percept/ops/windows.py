"""Smoothing windows shared by the distances and backbones: Gaussian (SSIM) and Hann (DISTS' L2 pooling)."""

from __future__ import annotations

import torch


def gaussian_window(
    size: int, sigma: float, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A normalised 1-D Gaussian window of ``size`` taps: ``(size,)``, summing to 1.

    Example:
        >>> w = gaussian_window(5, 1.5)
        >>> w.shape, round(w.sum().item(), 6)
        (torch.Size([5]), 1.0)
    """
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def hann_window_2d(size: int) -> torch.Tensor:
    """DISTS' 2-D Hann window: ``h h^T / sum`` with ``h = hanning(size)[1:-1]``, ``(size - 2, size - 2)`` float32.

    ``hanning`` is numpy's (symmetric, ``0.5 - 0.5 cos(2 pi n / (size - 1))``), computed in float64
    as ``DISTS_pytorch`` does; the outer product is cast to float32 before it is normalised.

    Example:
        >>> hann_window_2d(5)
        tensor([[0.0625, 0.1250, 0.0625],
                [0.1250, 0.2500, 0.1250],
                [0.0625, 0.1250, 0.0625]])
    """
    h = torch.hann_window(size, periodic=False, dtype=torch.float64)[1:-1]
    g = (h[:, None] * h[None, :]).float()
    return g / torch.sum(g)
