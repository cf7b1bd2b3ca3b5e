"""The distance contract.

A :class:`Distance` compares two readouts ``a, b`` of one tap and returns one value per sample,
``(N,)`` (or the ``(N, 1, H, W)`` map with ``spatial=True`` where it has one). A
:class:`FusedDistance` is one the fused op computes; it then also takes the readout's
normalisation and channel weights, so the pipeline never materialises normalised tensors.
"""

from __future__ import annotations

import torch
from torch import nn

from percept.errors import InputError
from percept.ops import feature_distance


class Distance(nn.Module):
    """Base class: ``forward(a, b, spatial=False) -> (N,)``.

    Attributes:
        symmetric: ``d(a, b) == d(b, a)`` holds (tests check it where promised).
        supports_spatial: ``spatial=True`` returns a ``(N, 1, H, W)`` map.
    """

    symmetric: bool = True
    supports_spatial: bool = False

    def forward(self, a: torch.Tensor, b: torch.Tensor, *, spatial: bool = False) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


def check_global(name: str, a: torch.Tensor, b: torch.Tensor, spatial: bool, *, same_size: bool = True) -> None:
    """The input checks of a distance between global statistics of a tap (SSIM, Gram, DISTS).

    Such a distance has no spatial map, and takes ``(N, C, H, W)`` maps or ``(N, C)`` vectors (a
    descriptor readout's); ``same_size=False`` lets the two maps differ in ``H, W`` (equal ``N, C``).

    Raises:
        InputError: ``spatial=True``, or shapes it cannot compare (both named in the message).

    Example:
        >>> check_global("ssim", torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 4, 4), False, same_size=False)
        >>> check_global("ssim", torch.zeros(2, 3), torch.zeros(2, 3), True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        percept.errors.InputError: the ssim distance compares global statistics of each tap: it has no spatial map...
    """
    if spatial:
        raise InputError(
            f"the {name} distance compares global statistics of each tap: it has no spatial map (spatial=True)"
        )
    same = a.shape == b.shape if same_size else a.shape[:2] == b.shape[:2]
    if a.dim() not in (2, 4) or b.dim() not in (2, 4) or not same:
        raise InputError(
            f"the {name} distance compares (N, C, H, W) feature maps (or (N, C) vectors) "
            f"{'of one shape' if same_size else 'with equal N and C'}, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


class FusedDistance(Distance):
    """A distance computed by :func:`percept.ops.feature_distance`.

    Subclasses set ``kind`` (``"sq"``, ``"abs"``, ``"cos"``) and ``channel_mean`` (divide the
    channel sum by C, as in a mean over all elements).
    """

    kind: str = "sq"
    channel_mean: bool = False
    supports_spatial = True

    def forward(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        *,
        spatial: bool = False,
        weight: torch.Tensor | None = None,
        normalize: bool = False,
    ) -> torch.Tensor:
        if a.dim() not in (2, 4):
            raise InputError(
                f"{type(self).__name__} compares (N, C, H, W) maps or (N, C) vectors, got shape {tuple(a.shape)}"
            )
        out = feature_distance(a, b, weight, normalize=normalize, kind=self.kind, spatial=spatial)
        return out / a.shape[1] if self.channel_mean else out

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, channel_mean={self.channel_mean}"
