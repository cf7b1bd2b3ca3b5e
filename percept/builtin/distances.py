"""Built-in distances: ``mse``, ``l1``, ``l2`` (the LPIPS convention) and ``cosine``.

For readouts ``a, b`` of shape ``(N, C, H, W)`` (``(N, C)`` vectors count as ``H = W = 1``), with
optional channel weights ``w_c`` from the readout (ones otherwise):

========  =====================================================================
mse       mean over C, H, W of ``w_c (a - b)^2``
l1        mean over C, H, W of ``w_c |a - b|``
l2        mean over H, W of ``sum_c w_c (a - b)^2`` (LPIPS: squared L2 per pixel)
cosine    mean over H, W of ``1 - cos(a, b)`` between channel vectors
========  =====================================================================
"""

from __future__ import annotations

from collections.abc import Callable

from percept.distances.base import FusedDistance
from percept.hookspecs import hookimpl


class MSE(FusedDistance):
    """Mean squared difference over channels and space.

    Example:
        >>> import torch
        >>> MSE()(torch.ones(1, 2, 3, 3), torch.zeros(1, 2, 3, 3)).tolist()
        [1.0]
    """

    kind, channel_mean = "sq", True


class L1(FusedDistance):
    """Mean absolute difference over channels and space.

    Example:
        >>> import torch
        >>> L1()(torch.ones(1, 2, 3, 3), torch.zeros(1, 2, 3, 3)).tolist()
        [1.0]
    """

    kind, channel_mean = "abs", True


class L2(FusedDistance):
    """Squared difference summed over channels, averaged over space (LPIPS' convention).

    Example:
        >>> import torch
        >>> L2()(torch.ones(1, 2, 3, 3), torch.zeros(1, 2, 3, 3)).tolist()
        [2.0]
    """

    kind, channel_mean = "sq", False


class Cosine(FusedDistance):
    """One minus the cosine between channel vectors, averaged over space; in [0, 2].

    Example:
        >>> import torch
        >>> Cosine()(torch.ones(1, 2, 3, 3), -torch.ones(1, 2, 3, 3)).tolist()
        [2.0]
    """

    kind, channel_mean = "cos", False


def _constant(cls: type[FusedDistance]) -> Callable[..., FusedDistance]:
    def factory(**kwargs) -> FusedDistance:
        return cls()

    return factory


@hookimpl
def register_distances(register: Callable[..., None]) -> None:
    register("mse", _constant(MSE), description="mean squared difference over channels and space")
    register("l1", _constant(L1), description="mean absolute difference over channels and space")
    register("l2", _constant(L2), description="squared difference summed over channels, mean over space (LPIPS)")
    register("cosine", _constant(Cosine), description="1 - cosine between channel vectors, mean over space")
