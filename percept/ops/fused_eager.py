"""The fused op's math for eager execution: the fewest passes over the feature maps that plain torch allows.

:mod:`percept.ops.fused_torch` states the math as inductor wants it (element-wise expressions that it fuses
into one loop); run eagerly, each of its expressions is a pass over an ``N x C x H x W`` tensor and a new
one allocated. The functions here compute the same values, with the same outputs and per-pixel statistics,
the way eager torch runs them fastest:

* ``x^ - y^`` computed in place in the buffer of ``x^``, squared or made absolute in place;
* channel sums as one matrix product per sample, ``w @ e`` over ``(C, H*W)`` (a single read, as LPIPS' 1x1
  convolution does), on maps large enough for it to pay;
* forward, two ``N x C x H x W`` buffers; backward, one besides the gradient it returns; updated in place;
* those buffers kept between calls on the CPU (:func:`release_workspace`): freshly allocated memory
  costs a page fault per 4 KiB at its first write, which on a CPU is often more than the arithmetic.

They agree with :func:`percept.ops.reference.feature_distance_reference` to rounding (the tests compare
every kind, flag and dtype, and gradcheck in float64). Notation as in :mod:`percept.ops.fused_torch`.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict

import torch

from percept.ops.reference import EPS, accumulation_dtype, autograd_records

WORKSPACE_BYTES = 64 << 20
"""The most memory, per thread, that the eager form keeps between calls for its intermediate maps (CPU only;
on CUDA torch's caching allocator already reuses memory). The maps of the shapes used last are kept; a map
larger than this is allocated per call. ``0`` keeps none."""

_workspace = threading.local()


def release_workspace() -> int:
    """Free the intermediate maps that the fused op's eager form keeps between calls in this thread (at most
    :data:`WORKSPACE_BYTES`); returns how many bytes that released. The next call allocates again.

    Example:
        >>> release_workspace() >= 0
        True
    """
    pool = getattr(_workspace, "pool", None)
    if not pool:
        return 0
    freed = sum(b.numel() * b.element_size() for b in pool.values())
    pool.clear()
    return freed


def _kept(like: torch.Tensor, slot: int) -> torch.Tensor:
    """An uninitialised contiguous buffer shaped like ``like`` for intermediate results only (never returned,
    never saved), the same one again for the next call of that shape in this thread (``slot`` tells apart
    the buffers that one call uses at once)."""
    size = like.numel() * like.element_size()
    if like.device.type != "cpu" or not like.is_contiguous() or size > WORKSPACE_BYTES:
        return torch.empty_like(like)
    pool: OrderedDict | None = getattr(_workspace, "pool", None)
    if pool is None:
        pool = _workspace.pool = OrderedDict()
    key = (tuple(like.shape), like.dtype, slot)
    buffer = pool.pop(key, None)
    if buffer is None:
        held = sum(b.numel() * b.element_size() for b in pool.values())
        while pool and held + size > WORKSPACE_BYTES:  # the least recently used go first
            _, old = pool.popitem(last=False)
            held -= old.numel() * old.element_size()
        buffer = torch.empty_like(like)
    pool[key] = buffer  # most recently used last
    return buffer


def _full_precision(device: torch.device):
    """Autocast off where it is on: the matrix products below would otherwise run in half precision."""
    if torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _scratch(like: torch.Tensor, *tensors: torch.Tensor | None, slot: int = 0) -> torch.Tensor | None:
    """A kept buffer shaped like ``like`` for intermediate products (``out=``), or ``None`` (each product then
    allocates its own) when autograd records operations on ``like`` and ``tensors``: ``out=`` cannot be
    differentiated. ``slot`` tells apart the buffers that one call uses at once."""
    return None if autograd_records(like, *tensors) else _kept(like, slot)


def _inverse_norm(x: torch.Tensor, eps: float, scratch: torch.Tensor | None, weight: torch.Tensor | None = None):
    """``(sum_c w_c x_c^2 + eps)^-1/2`` per pixel, ``(N, H, W)``; ``x^2`` is written into ``scratch``, a buffer
    shaped like ``x`` (``vector_norm`` over dim 1 is ten times slower on the CPU than a product and a sum)."""
    return torch.rsqrt(_channel_sum(torch.mul(x, x, out=scratch), weight).add_(eps))


BLAS_MIN_PIXELS = 4096
"""Maps with at least this many pixels sum their channels by matrix products (see :func:`_channel_sum`)."""


def _channel_sum(e: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """``sum_c w_c e_c`` per pixel (``w = 1`` where ``weight`` is ``None``), ``(N, H, W)``. ``e`` is an
    intermediate of the caller's, which this may scale in place.

    On maps of :data:`BLAS_MIN_PIXELS` pixels or more, one ``(1, C) @ (C, H*W)`` matrix product per sample:
    a single read of ``e``, two to three times faster on the CPU than ``e.sum(1)`` (which strides across
    channels). One product per sample, not one batched product: a batched product's rounding depends on the
    batch's size (BLAS blocks by the sizes), and a sample's score must not depend on what it is batched with
    (the ``1 - cos`` of nearly equal vectors turns a float32 unit into a large relative difference).
    """
    n, c, h, w = e.shape
    if h * w < BLAS_MIN_PIXELS or not e.is_contiguous():  # small maps; or channels-last: a reshape would copy
        return (e if weight is None else e.mul_(weight.to(e.dtype).view(1, -1, 1, 1))).sum(1)
    row = e.new_ones(1, c) if weight is None else weight.to(e.dtype).view(1, c)
    flat = e.reshape(n, c, h * w)
    return torch.cat([torch.mm(row, flat[i]) for i in range(n)]).view(n, h, w)


def _difference(x, y, rx, ry, scratch: torch.Tensor | None, out: torch.Tensor | None = None) -> torch.Tensor:
    """``x rx - y ry`` in ``out`` (``None``: a new buffer); ``rx``, ``ry`` per pixel, or ``None`` for no
    normalisation; ``y ry`` goes through ``scratch``, a buffer shaped like ``x``."""
    if rx is None:
        return torch.sub(x, y, out=out)
    # Two products, then the difference: a fused multiply-add (addcmul) would round x^ and y^ differently, and
    # an image's distance to itself would no longer be exactly 0.
    return torch.mul(x, rx.unsqueeze(1), out=out).sub_(torch.mul(y, ry.unsqueeze(1), out=scratch))


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
        difference = _scratch(x, y, slot=1)  # an intermediate here (squared, then summed)
        if not normalize:
            return _channel_sum(_error(torch.sub(x, y, out=difference), kind), weight), ()
        scratch = _scratch(x, y)  # x^2, then y^2, then y ry
        rx, ry = _inverse_norm(x, eps, scratch), _inverse_norm(y, eps, scratch)
        return _channel_sum(_error(_difference(x, y, rx, ry, scratch, difference), kind), weight), (rx, ry)


def _error(d: torch.Tensor, kind: str) -> torch.Tensor:
    """``d^2`` (``"sq"``) or ``|d|`` (``"abs"``), in place."""
    return d.square_() if kind == "sq" else d.abs_()


def _cos_forward(x, y, weight, eps: float):
    xy = torch.mul(x, y)
    dot = _channel_sum(xy, weight)
    scratch = None if autograd_records(x, y) else xy
    rx, ry = _inverse_norm(x, eps, scratch, weight), _inverse_norm(y, eps, scratch, weight)
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
    """Besides the gradients it returns, one ``N x C x H x W`` buffer (kept between calls): ``y ry``, then
    ``b x`` and ``b y`` for the sums through the norm. The difference becomes ``b``, then a gradient."""
    need_x, need_y, need_w = needs
    rx, ry = saved if normalize else (None, None)
    scratch = _scratch(x, y, grad, weight) if normalize or need_w else None
    d = _difference(x, y, rx, ry, scratch)
    gw = None
    if need_w:
        e = torch.mul(d, d, out=scratch) if kind == "sq" else torch.abs(d, out=scratch)
        gw = _spatial_sum(e, grad.unsqueeze(1))
    if not (need_x or need_y):
        return None, None, gw
    # dE/d(x^) = s b per pixel and channel: s = 2 g (sq) or g (abs) per pixel, b = w d (sq) or w sign(d) (abs).
    # s is folded into per-pixel factors below rather than multiplied into the maps (one pass fewer).
    s = grad * 2 if kind == "sq" else grad
    b = d if kind == "sq" else d.sign_()
    if weight is not None:
        b.mul_(weight.to(b.dtype).view(1, -1, 1, 1))
    if rx is None or ry is None:  # not normalised
        a = b.mul_(s.unsqueeze(1))
        return (a if need_x else None), (-a if need_y else None), gw
    # Through x^ = x rx: s rx (b - x rx^2 sum_k b_k x_k). Both sums first, while b is intact.
    along_x = _along(b, x, rx, s, scratch) if need_x else None
    along_y = _along(b, y, ry, s, scratch) if need_y else None
    gx = gy = None
    if along_x is not None:
        factor = (s * rx).unsqueeze(1)
        gx = torch.mul(b, factor) if need_y else b.mul_(factor)
        gx.addcmul_(x, along_x, value=-1)
    if along_y is not None:
        gy = b.mul_((s * ry).unsqueeze(1)).addcmul_(y, along_y, value=-1).neg_()
    return gx, gy, gw


def _along(b: torch.Tensor, x: torch.Tensor, rx: torch.Tensor, s: torch.Tensor, scratch: torch.Tensor | None):
    """``s rx^3 sum_k b_k x_k`` per pixel, ``(N, 1, H, W)`` (``b x`` goes through ``scratch``)."""
    return _channel_sum(torch.mul(b, x, out=scratch), None).mul_(rx).mul_(rx).mul_(rx).mul_(s).unsqueeze(1)


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
