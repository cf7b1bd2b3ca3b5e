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
