"""Pure-torch reference of the fused feature-difference op: the CPU path and the oracle in tests.

For two feature maps ``x, y`` of shape ``(N, C, H, W)`` (or ``(N, C)``, read as ``H = W = 1``) and an
optional per-channel weight ``w`` of shape ``(C,)``:

* ``normalize``: each pixel's channel vector is unit-normalised, ``x / sqrt(sum_c x_c^2 + eps)``
  (eps inside the square root, so the gradient stays finite where the features are all zero);
* ``kind="sq"``: ``e = sum_c w_c (x_c - y_c)^2``;
* ``kind="abs"``: ``e = sum_c w_c |x_c - y_c|``;
* ``kind="cos"``: ``e = 1 - (sum_c w_c x_c y_c + eps) / sqrt((sum_c w_c x_c^2 + eps)(sum_c w_c y_c^2 + eps))``
  (eps keeps identical zero vectors at distance 0).

The result is ``e`` averaged over space, shape ``(N,)``, or the map ``(N, 1, H, W)`` with
``spatial=True``. Half-precision inputs accumulate in float32 and return float32.
"""

from __future__ import annotations

import torch

KINDS = ("sq", "abs", "cos")
EPS = 1e-20


def autograd_records(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd records operations on ``tensors``: inside a backward, one with ``create_graph=True``
    or under a ``torch.func`` transform, whose result may be differentiated again (and where ``out=``, which
    cannot be differentiated, is refused)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (for gradcheck); every other float type accumulates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def unit_normalize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Unit-normalise the channel vector (dim 1) of every pixel: ``x / sqrt(sum_c x_c^2 + eps)``.

    Example:
        >>> unit_normalize(torch.tensor([[3.0, 4.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929]]
    """
    return x * torch.rsqrt(x.pow(2).sum(dim=1, keepdim=True) + eps)


def feature_distance_reference(
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    normalize: bool = False,
    kind: str = "sq",
    spatial: bool = False,
    eps: float = EPS,
) -> torch.Tensor:
    """Per-sample distance between two feature maps (see the module docstring for the formula).

    Args:
        x, y: ``(N, C, H, W)`` or ``(N, C)`` feature tensors of the same shape.
        weight: ``(C,)`` channel weights or ``None`` (all ones).
        normalize: unit-normalise channel vectors first (ignored by ``cos``, which is scale-free).
        kind: ``"sq"``, ``"abs"`` or ``"cos"``.
        spatial: return the ``(N, 1, H, W)`` map instead of its spatial mean.

    Returns:
        ``(N,)`` or ``(N, 1, H, W)`` in float32 (float64 for float64 inputs).

    Example:
        >>> x = torch.ones(2, 3, 4, 4)
        >>> feature_distance_reference(x, torch.zeros_like(x), kind="sq").tolist()
        [3.0, 3.0]
    """
    acc = accumulation_dtype(x.dtype)
    if x.dim() == 2:
        x, y = x[:, :, None, None], y[:, :, None, None]
    x, y = x.to(acc), y.to(acc)
    w = None if weight is None else weight.to(acc).view(1, -1, 1, 1)
    if kind == "cos":
        xx, yy, xy = x * x, y * y, x * y
        if w is not None:
            xx, yy, xy = xx * w, yy * w, xy * w
        per_pixel = 1 - (xy.sum(1) + eps) * torch.rsqrt(xx.sum(1) + eps) * torch.rsqrt(yy.sum(1) + eps)
        per_pixel = per_pixel.clamp(0.0, 2.0)  # rounding takes a == b a hair below 0
    elif kind in ("sq", "abs"):
        if normalize:
            x, y = unit_normalize(x, eps), unit_normalize(y, eps)
        diff = x - y
        err = diff * diff if kind == "sq" else diff.abs()
        if w is not None:
            err = err * w
        per_pixel = err.sum(1)
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if spatial:
        return per_pixel.unsqueeze(1)
    return per_pixel.mean(dim=(-2, -1))
