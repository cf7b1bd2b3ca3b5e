"""Built-in readouts: ``raw`` (the features as they are) and ``unit`` (channel unit-normalisation)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from percept.hookspecs import hookimpl
from percept.ops import unit_normalize
from percept.readouts.base import Readout


class Raw(Readout):
    """The tap's features as they are.

    Example:
        >>> Raw()(torch.ones(1, 2, 1, 1)).tolist()
        [[[[1.0]], [[1.0]]]]
    """

    fusable = True

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class Unit(Readout):
    """Each pixel's channel vector divided by its norm, ``f / sqrt(sum_c f_c^2 + 1e-20)`` (as LPIPS).

    The epsilon sits inside the square root, so all-zero feature vectors give 0 with finite gradients.

    Example:
        >>> Unit()(torch.tensor([[[[3.0]], [[4.0]]]])).flatten().tolist()
        [0.6000000238418579, 0.800000011920929]
    """

    fusable = True
    normalize = True

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return unit_normalize(features)


def _raw(channels: int | None = None, **kwargs) -> Raw:
    return Raw()


def _unit(channels: int | None = None, **kwargs) -> Unit:
    return Unit()


@hookimpl
def register_readouts(register: Callable[..., None]) -> None:
    register("raw", _raw, description="the tap's features as they are")
    register("unit", _unit, description="channel unit-normalisation per pixel (LPIPS)")
