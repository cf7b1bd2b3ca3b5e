"""Hook implementations: what percept-swd registers (the entry point ``swd`` points here)."""

from __future__ import annotations

from collections.abc import Callable

import percept
from percept_swd.sliced import SlicedProjection, SlicedWasserstein


def create_sliced(channels: int, projections: int | None = None, seed: int = 0, **kwargs) -> SlicedProjection:
    """Factory of the readout ``sliced``: ``projections`` random directions (default: ``channels``)."""
    return SlicedProjection(channels, projections, seed=seed)


def create_swd(p: int = 2, **kwargs) -> SlicedWasserstein:
    """Factory of the distance ``swd``."""
    return SlicedWasserstein(p=p)


@percept.hookimpl
def register_readouts(register: Callable[..., None]) -> None:
    register("sliced", create_sliced, description="projections on fixed random unit directions (sliced Wasserstein)")


@percept.hookimpl
def register_distances(register: Callable[..., None]) -> None:
    register("swd", create_swd, description="sliced Wasserstein distance (squared) between feature distributions")
