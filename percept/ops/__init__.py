"""Fused feature-difference ops: two feature maps to a per-sample distance.

:func:`feature_distance` is the entry point used by every built-in distance and the LPIPS presets.
It dispatches explicitly on device, dtype and availability; the pure-torch reference in
:mod:`percept.ops.reference` is both the fallback and the oracle.
"""

from __future__ import annotations

import torch

from percept.errors import InputError
from percept.ops.compiling import compile_count
from percept.ops.fused import (
    BACKENDS,
    LAZY_COMPILED,
    SETTINGS,
    FeatureDistanceFunction,
    choose_backend,
    fused_feature_distance,
    fused_setting,
)
from percept.ops.fused_eager import release_workspace
from percept.ops.reference import KINDS, feature_distance_reference, unit_normalize


def feature_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    normalize: bool = False,
    kind: str = "sq",
    spatial: bool = False,
    backend: str | None = None,
) -> torch.Tensor:
    """Distance between two feature maps per sample: normalise, compare, weight channels, average space.

    Args:
        x, y: ``(N, C, H, W)`` or ``(N, C)`` feature tensors of the same shape and dtype.
        weight: optional ``(C,)`` channel weights (may require grad).
        normalize: unit-normalise each pixel's channel vector first.
        kind: ``"sq"`` (sum of squared differences), ``"abs"`` or ``"cos"`` (1 - cosine).
        spatial: return the ``(N, 1, H, W)`` map instead of the ``(N,)`` spatial mean.
        backend: ``"reference"``, ``"eager"``, ``"compiled"`` or ``"triton"``; ``None`` chooses by
            device, size and ``$PERCEPT_FUSED`` (see :mod:`percept.ops.fused`).

    Returns:
        ``(N,)`` (or ``(N, 1, H, W)``), float32 for half inputs.

    Example:
        >>> x = torch.rand(2, 8, 5, 5)
        >>> feature_distance(x, x, normalize=True).tolist()
        [0.0, 0.0]
    """
    if x.shape != y.shape:
        raise InputError(f"expected feature maps of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() not in (2, 4):
        raise InputError(f"expected features of shape (N, C, H, W) or (N, C), got {tuple(x.shape)}")
    if kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, got {kind!r}")
    if weight is not None and weight.shape != (x.shape[1],):
        raise InputError(f"expected channel weights of shape ({x.shape[1]},), got {tuple(weight.shape)}")
    chosen = choose_backend(x, backend)
    if chosen == "compiled" and fused_setting(backend) != "compiled":
        chosen = LAZY_COMPILED  # chosen, not named: compiled once that has paid (see fused)
    if chosen == "reference":
        return feature_distance_reference(x, y, weight, normalize=normalize, kind=kind, spatial=spatial)
    if x.dim() == 2:
        x, y = x[:, :, None, None], y[:, :, None, None]
    per_pixel = fused_feature_distance(x, y, weight, normalize=normalize, kind=kind, backend=chosen)
    return per_pixel.unsqueeze(1) if spatial else per_pixel.mean(dim=(-2, -1))


__all__ = [
    "BACKENDS",
    "KINDS",
    "SETTINGS",
    "FeatureDistanceFunction",
    "choose_backend",
    "compile_count",
    "feature_distance",
    "feature_distance_reference",
    "fused_setting",
    "release_workspace",
    "unit_normalize",
]
