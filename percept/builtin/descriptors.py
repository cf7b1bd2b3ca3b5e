"""Statistical descriptors: a tap's ``(N, C, H, W)`` features reduced to one ``(N, D)`` vector per image.

==========  ======  ==========================================================================
readout     D       value
==========  ======  ==========================================================================
mean        C       spatial mean of each channel
std         C       spatial standard deviation of each channel, ``sqrt(var + 1e-8)`` (class :class:`Std`)
meanstd     2C      mean and std side by side (the statistics AdaIN and "Deep IQA dissected" use)
gram        C * C   Gram matrix ``F F^T / (H W)`` of the ``(C, H W)`` feature matrix (Gatys et al. 2016)
==========  ======  ==========================================================================

The fused distances take these as ``(N, D)`` vectors, so ``vgg19:relu1_1,relu2_1,relu3_1/gram`` is
the classic style loss (mean squared difference of Gram matrices) and ``resnet50:layer2/meanstd/l2``
compares channel statistics. Variances are population variances (divided by ``H W``); the epsilon
keeps the gradient of ``std`` finite on constant channels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from percept.errors import InputError
from percept.hookspecs import hookimpl
from percept.readouts.base import Readout

STD_EPS = 1e-8


def _check(features: torch.Tensor, what: str) -> torch.Tensor:
    """``features`` as ``(N, C, H, W)``; ``(N, C)`` vectors count as ``H = W = 1``."""
    if not isinstance(features, torch.Tensor) or features.dim() not in (2, 4):
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise InputError(f"the {what} readout reduces (N, C, H, W) feature maps or (N, C) vectors, got {shape}")
    return features[:, :, None, None] if features.dim() == 2 else features


def channel_mean_std(features: torch.Tensor, eps: float = STD_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial mean and standard deviation of each channel.

    Args:
        features: ``(N, C, H, W)`` (or ``(N, C)``, as ``H = W = 1``).
        eps: added to the variance inside the square root.

    Returns:
        ``(mean, std)``, each ``(N, C)``; ``std >= sqrt(eps)``.

    Example:
        >>> m, s = channel_mean_std(torch.tensor([[[[1.0, 3.0]]]]))
        >>> m.tolist(), round(s.item(), 4)
        ([[2.0]], 1.0)
    """
    features = _check(features, "mean/std")
    mean = features.mean(dim=(2, 3))
    var = features.var(dim=(2, 3), unbiased=False)
    return mean, torch.sqrt(var + eps)


def gram_matrix(features: torch.Tensor, *, flatten: bool = True) -> torch.Tensor:
    """Gram matrix of each image's features, normalised by the number of positions.

    Args:
        features: ``(N, C, H, W)`` (or ``(N, C)``, as ``H = W = 1``).
        flatten: return ``(N, C * C)`` (what the distances compare) instead of ``(N, C, C)``.

    Returns:
        ``G[n, i, j] = sum_p F[n, i, p] F[n, j, p] / (H W)``; symmetric, positive semi-definite.
        Half-precision features are computed in float32.

    Example:
        >>> gram_matrix(torch.ones(1, 2, 3, 3), flatten=False).tolist()
        [[[1.0, 1.0], [1.0, 1.0]]]
    """
    features = _check(features, "gram")
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    if f.dtype in (torch.float16, torch.bfloat16):
        f = f.float()
    g = torch.bmm(f, f.transpose(1, 2)) / (h * w)
    return g.reshape(n, c * c) if flatten else g


class Mean(Readout):
    """Spatial mean of each channel: ``(N, C, H, W) -> (N, C)``.

    Example:
        >>> Mean()(torch.arange(4.0).reshape(1, 1, 2, 2)).tolist()
        [[1.5]]
    """

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return _check(features, "mean").mean(dim=(2, 3))


class Std(Readout):
    """Spatial standard deviation of each channel: ``(N, C, H, W) -> (N, C)``.

    Example:
        >>> round(Std()(torch.tensor([[[[1.0, 3.0]]]])).item(), 4)
        1.0
    """

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return channel_mean_std(features)[1]


class MeanStd(Readout):
    """Channel means then channel standard deviations: ``(N, C, H, W) -> (N, 2C)``.

    Example:
        >>> [round(v, 4) for v in MeanStd()(torch.tensor([[[[1.0, 3.0]]]])).flatten().tolist()]
        [2.0, 1.0]
    """

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        mean, std = channel_mean_std(features)
        return torch.cat([mean, std], dim=1)


class Gram(Readout):
    """The flattened Gram matrix ``F F^T / (H W)``: ``(N, C, H, W) -> (N, C * C)``.

    Example:
        >>> Gram()(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 9])
    """

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return gram_matrix(features)


def _constant(cls: type[Readout]) -> Callable[..., Readout]:
    return lambda channels=None, **kwargs: cls()


@hookimpl
def register_readouts(register: Callable[..., None]) -> None:
    register("mean", _constant(Mean), description="spatial mean per channel, (N, C)")
    register("meanstd", _constant(MeanStd), description="channel means and standard deviations, (N, 2C)")
    register("gram", _constant(Gram), description="Gram matrix F F^T / (H W), flattened to (N, C*C) (style)")
