"""Style distance: mean squared difference of Gram matrices (Gatys, Ecker & Bethge 2016).

``d(a, b) = mean_{i, j} (G(a)_ij - G(b)_ij)^2`` with ``G = F F^T / (H W)`` per image (see
:func:`percept.builtin.descriptors.gram_matrix`). It is the same number as the ``gram`` readout
followed by ``mse`` (``vgg19:relu1_1,relu2_1,relu3_1/gram``); as a distance it composes with the
``raw`` readout and reads as one word in a spec: ``vgg19:relu1_1,relu2_1,relu3_1/raw/style``.
For the distance itself the sizes of the two maps may differ (Gram matrices do not depend on
``H, W``). ``(N, D)`` vectors (from a readout that already reduced space, such as ``gram``) are
compared as they are: ``.../gram/style`` is ``.../gram/mse``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from percept.builtin.descriptors import gram_matrix
from percept.distances.base import Distance, check_global
from percept.hookspecs import hookimpl
from percept.ops import feature_distance


class GramDistance(Distance):
    """Mean squared difference of the two feature maps' Gram matrices, per sample.

    Args (of ``forward``):
        a, b: ``(N, C, H, W)`` and ``(N, C, H', W')`` features of one tap.

    Returns:
        ``(N,)``, ``>= 0``; 0 when the channel correlations agree (e.g. ``b`` a shuffle of ``a``'s pixels).

    Example:
        >>> a = torch.rand(2, 4, 6, 6)
        >>> b = a.flatten(2)[..., torch.randperm(36)].reshape(2, 4, 6, 6)  # same pixels, shuffled
        >>> GramDistance()(a, b).abs().max().item() < 1e-6
        True
    """

    symmetric = True
    supports_spatial = False

    def forward(self, a: torch.Tensor, b: torch.Tensor, *, spatial: bool = False) -> torch.Tensor:
        check_global("Gram (style)", a, b, spatial, same_size=False)
        # Vectors come from a readout that already reduced space (``gram``, ``meanstd``): compared as they are,
        # so ``.../gram/style`` means ``.../gram/mse`` rather than a (C*C)^2 Gram matrix of a Gram matrix.
        ga, gb = (a, b) if a.dim() == 2 else (gram_matrix(a), gram_matrix(b))
        return feature_distance(ga, gb, kind="sq") / ga.shape[1]


@hookimpl
def register_distances(register: Callable[..., None]) -> None:
    register(
        "style",
        lambda **kwargs: GramDistance(),
        description="mean squared difference of Gram matrices (Gatys style loss)",
        aliases=("gram-mse",),
    )
