"""Distances: how two readouts of one tap are compared, per sample."""

from percept.distances.base import Distance, FusedDistance

__all__ = ["Distance", "FusedDistance"]
