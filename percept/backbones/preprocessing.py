"""What a backbone does to an image before its first stage: size, range, grey to colour, mean and std.

:class:`Preprocessing` is the part of :class:`~percept.backbones.base.Backbone` that holds the input
contract (the range users pass, the normalisation the weights expect, the size a fixed-size network
runs at) and maps an image batch to the network's input. :func:`resize_images` and
:func:`check_interpolation` are the resizing it uses, also for the toolkit and the command line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from percept.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "area")
_INTERPOLATION_ALIASES = {"lanczos": "bicubic", "hamming": "bicubic", "box": "area", "random": "bicubic"}
P = TypeVar("P", bound="Preprocessing")


class Preprocessing(nn.Module):
    """The input side of a backbone: images in ``input_range`` to the normalised input of its network.

    A part of :class:`~percept.backbones.base.Backbone` (which sets it up in its ``__init__``; see
    there for the arguments); on its own it holds no network.

    Attributes:
        input_range: the range of the images users pass, ``(0, 1)`` or ``(-1, 1)``.
        norm_domain: the range images are mapped to before ``(x - mean) / std``.
        mean, std: ``(1, C, 1, 1)`` buffers (they follow ``.to(device)``, and are not in ``state_dict``).
        input_size: ``(H, W)`` the weights were trained at, or ``None``.
        resize, interpolation, fixed_size: see :class:`~percept.backbones.base.Backbone`.
    """

    name: str
    mean: torch.Tensor  # buffers, (1, 3, 1, 1)
    std: torch.Tensor

    def _init_preprocessing(
        self,
        name: str,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        input_range: tuple[float, float],
        input_size: tuple[int, int] | None,
        resize: bool,
        interpolation: str,
        fixed_size: bool,
    ) -> None:
        """Set the input contract up (called once by the backbone's ``__init__``, after ``nn.Module``'s)."""
        if (resize or fixed_size) and input_size is None:
            raise ValueError(f"backbone {name!r}: resize and fixed_size need an input_size")
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self.resize = bool(resize)
        self.interpolation = check_interpolation(interpolation)
        self.fixed_size = bool(fixed_size)
        self.input_range = check_range(input_range)
        self.norm_domain = (0.0, 1.0)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def set_normalization(
        self: P, mean: Sequence[float], std: Sequence[float], domain: tuple[float, float] = (0.0, 1.0)
    ) -> P:
        """Use ``(x - mean) / std`` on images mapped to ``domain`` (LPIPS: shift/scale on [-1, 1]), in the
        reference implementation's own arithmetic: float32 results identical to it, not just equal up to rounding.

        Returns the backbone itself (so a factory can end with ``return Backbone(...).set_normalization(...)``).

        Example:
            >>> bb = create_backbone("alexnet", weights=None)  # doctest: +SKIP
            >>> bb.set_normalization((-0.030, -0.088, -0.188), (0.458, 0.448, 0.450), (-1, 1)) is bb  # doctest: +SKIP
            True
        """
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.mean.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.std.device).view(1, -1, 1, 1)
        self.norm_domain = check_range(domain)
        return self

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Map images in ``input_range`` to the network's input: grey to colour, range, mean/std, and with
        ``resize`` the size the network expects.

        Args:
            x: ``(N, 1 or 3, H, W)`` images in ``input_range`` (not validated here).

        Returns:
            ``(N, 3, H', W')`` in ``x``'s dtype (``H', W'`` is ``input_size`` with ``resize``, else ``H, W``).

        Example:
            >>> bb = create_backbone("alexnet", weights=None)  # doctest: +SKIP
            >>> bb.preprocess(torch.rand(2, 1, 32, 32)).shape  # doctest: +SKIP
            torch.Size([2, 3, 32, 32])
        """
        (low, high), (d_low, d_high) = self.input_range, self.norm_domain
        if self.resize and self.input_size is not None:  # as fixed_size, resize comes with an input_size
            x = resize_images(x, self.input_size, self.interpolation)
        if (low, high) != (d_low, d_high):
            if (low, high) == (0.0, 1.0):
                x = x * (d_high - d_low) + d_low
            else:
                x = (x - low) * ((d_high - d_low) / (high - low)) + d_low
        if x.shape[1] == 1 and self.mean.shape[1] == 3:
            x = x.expand(-1, 3, -1, -1)
        mean = self.mean.to(dtype=x.dtype)
        std = self.std.to(dtype=x.dtype)
        return (x - mean) / std

    def _check_size(self, x: torch.Tensor, name: str = "x") -> None:
        """Refuse another size than ``input_size`` for a ``fixed_size`` network without ``resize``."""
        if self.fixed_size and not self.resize and self.input_size and tuple(x.shape[-2:]) != self.input_size:
            h, w = self.input_size
            raise InputError(
                f"backbone {self.name!r} runs at {h}x{w} only, got {name} of size {x.shape[-2]}x{x.shape[-1]}: crop "
                f"or resize your images to {h}x{w}, or build it with resize=True to resize them to {h}x{w} "
                f"({self.interpolation}, antialiased) on the way in"
            )


def check_interpolation(mode: str) -> str:
    """The :func:`torch.nn.functional.interpolate` mode for a PIL/timm interpolation name.

    PIL's ``lanczos`` and ``hamming`` (which ``interpolate`` lacks) become ``bicubic``, the closest
    antialiased kernel it has; ``box`` becomes ``area``.

    Example:
        >>> check_interpolation("bicubic"), check_interpolation("lanczos")
        ('bicubic', 'bicubic')
    """
    mode = str(mode).lower()
    mode = _INTERPOLATION_ALIASES.get(mode, mode)
    if mode not in INTERPOLATIONS:
        raise InputError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {mode!r}")
    return mode


def resize_images(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(N, C, H, W)`` images to ``size = (h, w)``, differentiably; unchanged if already that size.

    ``bilinear`` and ``bicubic`` are antialiased (as PIL's); values keep their range up to bicubic overshoot.

    Example:
        >>> resize_images(torch.rand(2, 3, 64, 48), (32, 32), "bicubic").shape
        torch.Size([2, 3, 32, 32])
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    mode = check_interpolation(mode)
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False, antialias=True)
    return F.interpolate(x, size=tuple(size), mode=mode)


def check_range(input_range: Sequence[float]) -> tuple[float, float]:
    """A value range as a pair of floats ``(low, high)``, finite with ``low < high``; ``InputError`` otherwise.

    Example:
        >>> check_range((-1, 1))
        (-1.0, 1.0)
    """
    try:
        low, high = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise InputError(
            f"input_range must be a pair (low, high) such as (0, 1) or (-1, 1), got {input_range!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InputError(f"input_range must be finite with low < high, got {input_range!r}")
    return (low, high)
