"""The measures a sweep compares a tap's maps with: distances ``(N,)`` and per-map errors ``(N, C)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from percept.builtin.ssim import ssim_per_map
from percept.errors import SpecError, unknown_name


def mse_per_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of each feature map: ``(1 or N, C, H, W), (N, C, H, W) -> (N, C)``.

    Example:
        >>> mse_per_map(torch.ones(1, 2, 3, 3), torch.zeros(2, 2, 3, 3)).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    return (a.float() - b.float()).pow(2).mean(dim=(2, 3))


def unit_sq_per_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared difference of unit-normalised channels, averaged over space, per map: ``(N, C)``.

    Summed over channels with weights this is LPIPS' per-tap distance, so it is the per-channel error
    that channel-weight fine-tuning fits.

    Example:
        >>> unit_sq_per_map(torch.ones(1, 2, 3, 3), torch.ones(2, 2, 3, 3)).tolist()
        [[0.0, 0.0], [0.0, 0.0]]
    """
    from percept.ops.reference import unit_normalize

    return (unit_normalize(b.float()) - unit_normalize(a.float())).pow(2).mean(dim=(2, 3))


def _fused(a: torch.Tensor, b: torch.Tensor, **options) -> torch.Tensor:
    """``feature_distance`` of the reference ``a`` (1 or N, ...) against the batch ``b``: per-pixel channel
    sums, spatial mean, no temporary as large as the features (compiled on CPU for large maps)."""
    from percept.ops import feature_distance

    return feature_distance(b, a.expand_as(b), **options)


def _flat_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Runs at every stage of every batch: the fused op reads both maps once and accumulates in
    # float32 blocks (more exact than one long sum, and 2-3x faster than a difference tensor).
    pixels = b[0, 0].numel()
    return (_fused(a, b, kind="sq") * pixels).sqrt()


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _fused(a, b, kind="sq") / b.shape[1]


def _unit_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _fused(a, b, kind="sq", normalize=True)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _fused(a, b, kind="cos")


def _ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1 - ssim_per_map(a, b).mean(1)


def _meanstd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # The meanstd readout's statistics (population std, sqrt(var + 1e-8)): sqrt of raw ``meanstd/l2``.
    from percept.builtin.descriptors import channel_mean_std

    def describe(x: torch.Tensor) -> torch.Tensor:
        return torch.cat(channel_mean_std(x.float()), 1)

    return (describe(a) - describe(b)).pow(2).sum(1).sqrt()


def _gram(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # The gram readout's matrices: sqrt of ``gram/l2``.
    from percept.builtin.descriptors import gram_matrix

    return (gram_matrix(a.float()) - gram_matrix(b.float())).pow(2).sum(1).sqrt()


MEASURES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "flat-l2": _flat_l2,
    "mse": _mse,
    "unit-l2": _unit_l2,
    "cosine": _cosine,
    "ssim": _ssim,
    "meanstd": _meanstd,
    "gram": _gram,
}


def make_measure(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The measure ``name``: ``f(a (1 or N, C, H, W), b (N, C, H, W)) -> (N,)`` distances.

    ``name`` is one of :data:`MEASURES` or ``readout/distance`` of registered ones (``unit/l2``).

    Example:
        >>> f = make_measure("flat-l2")
        >>> f(torch.zeros(1, 1, 2, 2), torch.ones(3, 1, 2, 2)).tolist()
        [2.0, 2.0, 2.0]
    """
    if name in MEASURES:
        return MEASURES[name]
    if "/" not in name:
        raise SpecError(unknown_name("measure", name, [*MEASURES, "<readout>/<distance>"]))
    from percept.distances.base import FusedDistance
    from percept.registry import get_registry

    readout_name, _, distance_name = name.partition("/")
    registry = get_registry()
    readout_factory = registry.get("readout", readout_name).factory
    distance = registry.get("distance", distance_name).factory()
    readouts: dict[int, Any] = {}

    def measure(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        channels = b.shape[1]
        if channels not in readouts:
            readouts[channels] = readout_factory(channels=channels).to(b.device)
        readout = readouts[channels]
        a = a.expand(b.shape[0], *a.shape[1:]).contiguous()
        if isinstance(distance, FusedDistance) and readout.fusable:
            return distance(a, b, weight=readout.channel_weight(), normalize=readout.normalize)
        return distance(readout(a), readout(b))

    return measure
