"""The readout contract.

A :class:`Readout` maps one tap's features ``(N, C, H, W)`` to what a distance compares. A readout
that is only "optional unit normalisation plus optional channel weights" says so (``fusable``,
``normalize``, :meth:`channel_weight`), and the pipeline then hands the raw features straight to
the fused op instead of materialising the normalised tensors.
"""

from __future__ import annotations

import torch
from torch import nn

from percept.ops import unit_normalize


class Readout(nn.Module):
    """Base class. Subclasses implement :meth:`forward`; fusable ones set the class attributes.

    Attributes:
        fusable: the readout is exactly ``normalize`` plus :meth:`channel_weight`, so the pipeline
            may skip :meth:`forward` and fuse it into the distance.
        normalize: unit-normalise channel vectors (only meaningful when ``fusable``).
        trainable: its parameters are meant to be trained (kept in ``state_dict`` and left with
            ``requires_grad``); published, frozen heads set this to False.
    """

    fusable: bool = False
    normalize: bool = False
    trainable: bool = False

    def channel_weight(self) -> torch.Tensor | None:
        """``(C,)`` weights applied to the per-channel error, or ``None``."""
        return None

    def distance_kwargs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments this readout hands to a non-fused distance for its tap (DISTS' per-channel
        alpha and beta), or ``{}``."""
        return {}

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class ChannelWeightedReadout(Readout):
    """Optional unit normalisation, then per-channel weights applied to the error (an LPIPS head).

    Args:
        channels: number of channels of the tap.
        weight: initial ``(channels,)`` weights; ones if ``None``.
        normalize: unit-normalise each pixel's channel vector.
        trainable: learn the weights (they then stay non-negative through a softplus-free clamp in
            the optimiser's hands is the caller's choice; published heads are frozen).

    Example:
        >>> r = ChannelWeightedReadout(4, torch.tensor([1.0, 0.0, 2.0, 1.0]), normalize=True)
        >>> r.channel_weight().tolist()
        [1.0, 0.0, 2.0, 1.0]
    """

    fusable = True

    def __init__(
        self,
        channels: int,
        weight: torch.Tensor | None = None,
        *,
        normalize: bool = True,
        trainable: bool = False,
    ) -> None:
        super().__init__()
        weight = torch.ones(channels) if weight is None else weight.detach().reshape(-1).float().clone()
        if weight.shape != (channels,):
            raise ValueError(f"expected {channels} channel weights, got shape {tuple(weight.shape)}")
        self.weight = nn.Parameter(weight, requires_grad=trainable)
        self.normalize = normalize
        self.trainable = trainable

    def channel_weight(self) -> torch.Tensor:
        return self.weight

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return unit_normalize(features) if self.normalize else features

    def extra_repr(self) -> str:
        return f"channels={self.weight.numel()}, normalize={self.normalize}, trainable={self.trainable}"
