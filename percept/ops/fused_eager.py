"""The fused op's math for eager execution: the fewest passes over the feature maps that plain torch allows.

:mod:`percept.ops.fused_torch` states the math as inductor wants it (element-wise expressions that it fuses
into one loop); run eagerly, each of its expressions is a pass over an ``N x C x H x W`` tensor and a new
one allocated. The functions here compute the same values, with the same outputs and per-pixel statistics,
the way eager torch runs them fastest:

* ``x^ - y^`` computed in place in the buffer of ``x^``, squared or made absolute in place;
* the weighted channel sum as one matrix product ``w @ e`` over ``(N, C, H*W)`` (a single read, as LPIPS'
  1x1 convolution does), the unweighted one as a plain sum;
* in backward, at most two ``N x C x H x W`` buffers, updated in place.

They agree with :func:`percept.ops.reference.feature_distance_reference` to rounding (the tests compare
every kind, flag and dtype, and gradcheck in float64). Notation as in :mod:`percept.ops.fused_torch`.
"""

from __future__ import annotations

import contextlib

import torch

from percept.ops.reference import EPS, accumulation_dtype


def _full_precision(device: torch.device):
    """Autocast off where it is on: the matrix products below would otherwise run in half precision."""
    if torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _inverse_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``(sum_c x_c^2 + eps)^-1/2`` per pixel, ``(N, H, W)`` (``vector_norm`` over dim 1 is ten times slower
    on the CPU than a product and a sum)."""
    return torch.rsqrt(torch.mul(x, x).sum(1).add_(eps))


def _channel_sum(e: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """``sum_c w_c e_c`` per pixel, ``(N, H, W)``: a matrix product with the weights, one read of ``e``."""
    if weight is None:
        return e.sum(1)
    if not e.is_contiguous():  # channels-last or strided: a reshape would copy
        return (e * weight.to(e.dtype).view(1, -1, 1, 1)).sum(1)
    n, c, h, w = e.shape
    return torch.matmul(weight.to(e.dtype).view(1, 1, c), e.reshape(n, c, h * w)).view(n, h, w)


def _difference(x, y, rx, ry) -> torch.Tensor:
    """A new buffer ``x rx - y ry`` (``rx``, ``ry`` per pixel, or ``None`` for no normalisation)."""
    if rx is None:
        return torch.sub(x, y)
    # Two products, then the difference: a fused multiply-add (addcmul) would round x^ and y^ differently, and
    # an image's distance to itself would no longer be exactly 0.
    return torch.mul(x, rx.unsqueeze(1)).sub_(torch.mul(y, ry.unsqueeze(1)))


def eager_forward(
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor | None,
    normalize: bool,
    kind: str,
    eps: float = EPS,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Per-pixel error ``(N, H, W)`` and the statistics for backward, as
    :func:`percept.ops.fused_torch.fused_forward_torch` returns them.

    Example:
        >>> x = torch.rand(2, 8, 4, 4)
        >>> eager_forward(x, x, None, True, "sq")[0].abs().max().item() < 1e-6
        True
    """
    acc = accumulation_dtype(x.dtype)
    x, y = x.to(acc), y.to(acc)
    with _full_precision(x.device):
        if kind == "cos":
            return _cos_forward(x, y, weight, eps)
        rx, ry = (_inverse_norm(x, eps), _inverse_norm(y, eps)) if normalize else (None, None)
        d = _difference(x, y, rx, ry)
        d = d.square_() if kind == "sq" else d.abs_()
        saved = (rx, ry) if rx is not None and ry is not None else ()
        return _channel_sum(d, weight), saved


def _cos_forward(x, y, weight, eps: float):
    buffer = torch.mul(x, y)
    dot = _channel_sum(buffer, weight)
    if weight is None:
        rx, ry = _inverse_norm(x, eps), _inverse_norm(y, eps)
    else:
        rx = torch.rsqrt(_channel_sum(torch.mul(x, x, out=buffer), weight).add_(eps))
        ry = torch.rsqrt(_channel_sum(torch.mul(y, y, out=buffer), weight).add_(eps))
    value = (dot + eps).mul_(rx).mul_(ry)
    return torch.rsub(value, 1).clamp_(0.0, 2.0), (dot, rx, ry)


def eager_backward(
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
    """Gradients for ``x``, ``y`` (in their dtype) and ``weight`` (float32), as
    :func:`percept.ops.fused_torch.fused_backward_torch` returns them.

    Example:
        >>> x, y, g = torch.rand(1, 4, 2, 2), torch.rand(1, 4, 2, 2), torch.ones(1, 2, 2)
        >>> gx, gy, gw = eager_backward(g, x, y, None, (), False, "sq", (True, True, False))
        >>> torch.allclose(gx, 2 * (x - y)) and torch.allclose(gy, -gx) and gw is None
        True
    """
    acc = accumulation_dtype(x.dtype)
    in_dtype = x.dtype
    x, y, grad = x.to(acc), y.to(acc), grad.to(acc)
    with _full_precision(x.device):
        if kind == "cos":
            gx, gy, gw = _cos_backward(grad, x, y, weight, saved, needs, eps)
        else:
            gx, gy, gw = _distance_backward(grad, x, y, weight, saved, normalize, kind, needs)
    return _cast(gx, in_dtype), _cast(gy, in_dtype), gw


def _distance_backward(grad, x, y, weight, saved, normalize: bool, kind: str, needs):
    need_x, need_y, need_w = needs
    rx, ry = saved if normalize else (None, None)
    d = _difference(x, y, rx, ry)
    g = grad.unsqueeze(1)
    gw = _spatial_sum(d.square() if kind == "sq" else d.abs(), g) if need_w else None
    if not (need_x or need_y):
        return None, None, gw
    a = d.mul_(2).mul_(g) if kind == "sq" else d.sign_().mul_(g)  # dE/d(x^) without the channel weight
    if weight is not None:
        a.mul_(weight.to(a.dtype).view(1, -1, 1, 1))
    if rx is None or ry is None:  # not normalised
        return (a if need_x else None), (-a if need_y else None), gw
    gx = _through_norm(a, x, rx, need_y) if need_x else None
    gy = _through_norm(a, y, ry, False).neg_() if need_y else None
    return gx, gy, gw


def _through_norm(a: torch.Tensor, x: torch.Tensor, rx: torch.Tensor, keep: bool) -> torch.Tensor:
    """``rx (a - x^ sum_k a_k x^_k)``: the gradient through ``x^ = x rx``; in ``a`` itself unless ``keep``."""
    r = rx.unsqueeze(1)
    along = torch.mul(a, x).sum(1, keepdim=True).mul_(r).mul_(r)  # sum_k a_k x^_k, times rx
    out = torch.mul(a, r) if keep else a.mul_(r)
    return out.addcmul_(x, along.mul_(r), value=-1)


def _spatial_sum(e: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``sum_{n,h,w} g e`` per channel, ``(C,)``."""
    if not e.is_contiguous():
        return (e * g).sum((0, 2, 3))
    n, c, h, w = e.shape
    return torch.bmm(e.reshape(n, c, h * w), g.reshape(n, h * w, 1)).sum(0).view(c)


def _cos_backward(grad, x, y, weight, saved, needs, eps: float):
    need_x, need_y, need_w = needs
    dot, rx, ry = saved
    value = torch.rsub((dot + eps) * rx * ry, 1)
    grad = grad * ((value >= 0) & (value <= 2)).to(grad.dtype)  # the clamp's gradient
    common = (grad * rx * ry).unsqueeze(1)
    w = None if weight is None else weight.to(x.dtype).view(1, -1, 1, 1)
    gx = gy = gw = None
    if need_x:
        gx = torch.mul(x, ((dot + eps) * rx * rx).unsqueeze(1)).sub_(y).mul_(common)
        gx = gx.mul_(w) if w is not None else gx
    if need_y:
        gy = torch.mul(y, ((dot + eps) * ry * ry).unsqueeze(1)).sub_(x).mul_(common)
        gy = gy.mul_(w) if w is not None else gy
    if need_w:
        half = 0.5 * (dot + eps)
        inner = torch.mul(x, x).mul_((half * rx * rx).unsqueeze(1))
        inner.addcmul_(y, y * (half * ry * ry).unsqueeze(1)).sub_(x * y)  # (P+eps)(x^2 Rx^2 + y^2 Ry^2)/2 - xy
        gw = _spatial_sum(inner, common)
    return gx, gy, gw


def _cast(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if t is None else t.to(dtype)
