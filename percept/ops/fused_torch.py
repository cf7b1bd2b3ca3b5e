"""The fused op's math in plain torch: forward to a per-pixel map, backward by recomputation.

These two functions are what the CPU path runs (eagerly, or through ``torch.compile``, which fuses
them into single loops). They keep nothing of size N x C x H x W between forward and backward:
the forward returns the ``(N, H, W)`` per-pixel error and a few ``(N, H, W)`` per-pixel statistics
(inverse norms, dot products); the backward recomputes the rest from the inputs.

Notation (per pixel, channels c): ``r_x = (sum_c x_c^2 + eps)^-1/2``, ``x^ = x r_x``.

* ``sq``/``abs``: ``e = sum_c w_c phi(x^_c - y^_c)`` with ``phi(d) = d^2`` or ``|d|``.
  With ``a_c = g w_c phi'(d_c)``: ``dx_c = r_x (a_c - x^_c sum_k a_k x^_k)`` when normalising,
  ``dx_c = a_c`` otherwise; ``dy`` likewise with the sign flipped; ``dw_c = sum g phi(d_c)``.
* ``cos``: with ``P = sum w x y``, ``R_x = (sum w x^2 + eps)^-1/2``:
  ``e = 1 - (P + eps) R_x R_y``, clamped to [0, 2];
  ``dx_c = -g w_c R_x R_y (y_c - (P + eps) R_x^2 x_c)``;
  ``dw_c = -sum g R_x R_y (x_c y_c - (P + eps)(x_c^2 R_x^2 + y_c^2 R_y^2) / 2)``.
"""

from __future__ import annotations

import torch

from percept.ops.reference import EPS, accumulation_dtype


def _channel_weight(weight: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if weight is None else weight.to(dtype).view(1, -1, 1, 1)


def fused_forward_torch(
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor | None,
    normalize: bool,
    kind: str,
    eps: float = EPS,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Per-pixel error ``(N, H, W)`` (float32, float64 for float64) and the per-pixel statistics
    the backward needs."""
    acc = accumulation_dtype(x.dtype)
    x, y = x.to(acc), y.to(acc)
    w = _channel_weight(weight, acc)
    if kind == "cos":
        xy, xx, yy = x * y, x * x, y * y
        if w is not None:
            xy, xx, yy = xy * w, xx * w, yy * w
        dot = xy.sum(1)
        rx, ry = torch.rsqrt(xx.sum(1) + eps), torch.rsqrt(yy.sum(1) + eps)
        return (1 - (dot + eps) * rx * ry).clamp(0.0, 2.0), (dot, rx, ry)
    saved: tuple[torch.Tensor, ...] = ()
    if normalize:
        rx = torch.rsqrt((x * x).sum(1) + eps)
        ry = torch.rsqrt((y * y).sum(1) + eps)
        x, y = x * rx.unsqueeze(1), y * ry.unsqueeze(1)
        saved = (rx, ry)
    d = x - y
    err = d * d if kind == "sq" else d.abs()
    if w is not None:
        err = err * w
    return err.sum(1), saved


def fused_backward_torch(
    grad: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor | None,
    saved: tuple[torch.Tensor, ...],
    normalize: bool,
    kind: str,
    needs: tuple[bool, bool, bool],
    eps: float = EPS,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gradients for ``x``, ``y`` (in their dtype) and ``weight`` (float32) from the per-pixel
    upstream gradient ``grad`` ``(N, H, W)``; ``needs`` says which of the three to compute (a target
    that needs no gradient costs no N x C x H x W tensor)."""
    need_x, need_y, need_w = needs
    acc = accumulation_dtype(x.dtype)
    in_dtype = x.dtype
    x, y = x.to(acc), y.to(acc)
    w = _channel_weight(weight, acc)
    grad = grad.to(acc)
    if kind == "cos":
        dot, rx, ry = saved
        value = 1 - (dot + eps) * rx * ry
        grad = grad * ((value >= 0) & (value <= 2)).to(acc)  # the clamp's gradient
        common = (grad * rx * ry).unsqueeze(1)
        px, py = ((dot + eps) * rx * rx).unsqueeze(1), ((dot + eps) * ry * ry).unsqueeze(1)
        gx = -common * (y - px * x) if need_x else None
        gy = -common * (x - py * y) if need_y else None
        if w is not None:
            gx = gx * w if gx is not None else None
            gy = gy * w if gy is not None else None
        gw = None
        if need_w:
            half = 0.5 * (dot + eps).unsqueeze(1)
            rx2, ry2 = (rx * rx).unsqueeze(1), (ry * ry).unsqueeze(1)
            gw = -(common * (x * y - half * (x * x * rx2 + y * y * ry2))).sum((0, 2, 3))
        return _cast(gx, in_dtype), _cast(gy, in_dtype), gw
    if normalize:
        rx, ry = (s.unsqueeze(1) for s in saved)
        x, y = x * rx, y * ry
    d = x - y
    g = grad.unsqueeze(1)
    a = g * (2 * d if kind == "sq" else torch.sign(d))
    if w is not None:
        a = a * w
    if normalize:
        gx = rx * (a - x * (a * x).sum(1, keepdim=True)) if need_x else None
        gy = -ry * (a - y * (a * y).sum(1, keepdim=True)) if need_y else None
    else:
        gx, gy = (a if need_x else None), (-a if need_y else None)
    gw = (g * (d * d if kind == "sq" else d.abs())).sum((0, 2, 3)) if need_w else None
    return _cast(gx, in_dtype), _cast(gy, in_dtype), gw


def _cast(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if t is None else t.to(dtype)
