"""Triton kernels of the fused op: forward and backward, one program per (pixel block, sample).

Kernel ladder: ``_feature_distance_fwd_kernel`` / ``_feature_distance_bwd_kernel`` -> the launchers
``feature_distance_fwd_triton`` / ``feature_distance_bwd_triton`` (shape checks, strides, block
sizes) -> :class:`percept.ops.fused.FeatureDistanceFunction`. The math is that of
:mod:`percept.ops.fused_torch` (see its docstring). A program loads ``BLOCK_C x BLOCK_P`` tiles,
pixels contiguous in memory for NCHW (channels contiguous for channels_last is handled through
strides), accumulates in float32, and writes the ``(N, H*W)`` per-pixel error and per-pixel
statistics; the backward reads them back and recomputes everything else. Weight gradients are
written as per-program partial sums and reduced by torch (deterministic, no atomics).

Run on the CPU with ``TRITON_INTERPRET=1`` (set before this module is imported) for tests.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from percept.ops.reference import EPS

_KIND_CODES = {"sq": 0, "abs": 1, "cos": 2}


@triton.jit
def _feature_distance_fwd_kernel(
    X, Y, W, OUT, S0, S1, S2,
    C, P,
    sxn, sxc, sxp, syn, syc, syp,
    eps,
    NORMALIZE: tl.constexpr, KIND: tl.constexpr, HAS_W: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):  # fmt: skip
    pid_p = tl.program_id(0)
    n = tl.program_id(1).to(tl.int64)
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    mask_p = offs_p < P
    x_base = X + n * sxn + offs_p[None, :] * sxp
    y_base = Y + n * syn + offs_p[None, :] * syp
    out_offs = n * P + offs_p
    if KIND == 2:
        dot = tl.zeros([BLOCK_P], dtype=tl.float32)
        sxx = tl.zeros([BLOCK_P], dtype=tl.float32)
        syy = tl.zeros([BLOCK_P], dtype=tl.float32)
        for c0 in range(0, C, BLOCK_C):
            offs_c = c0 + tl.arange(0, BLOCK_C)
            mask_c = offs_c < C
            m = mask_c[:, None] & mask_p[None, :]
            xv = tl.load(x_base + offs_c[:, None] * sxc, mask=m, other=0.0).to(tl.float32)
            yv = tl.load(y_base + offs_c[:, None] * syc, mask=m, other=0.0).to(tl.float32)
            if HAS_W:
                wv = tl.load(W + offs_c, mask=mask_c, other=0.0).to(tl.float32)[:, None]
                dot += tl.sum(wv * xv * yv, axis=0)
                sxx += tl.sum(wv * xv * xv, axis=0)
                syy += tl.sum(wv * yv * yv, axis=0)
            else:
                dot += tl.sum(xv * yv, axis=0)
                sxx += tl.sum(xv * xv, axis=0)
                syy += tl.sum(yv * yv, axis=0)
        rx = 1.0 / tl.sqrt(sxx + eps)
        ry = 1.0 / tl.sqrt(syy + eps)
        value = 1.0 - (dot + eps) * rx * ry
        value = tl.minimum(tl.maximum(value, 0.0), 2.0)
        tl.store(OUT + out_offs, value, mask=mask_p)
        tl.store(S0 + out_offs, dot, mask=mask_p)
        tl.store(S1 + out_offs, rx, mask=mask_p)
        tl.store(S2 + out_offs, ry, mask=mask_p)
    else:
        rx = tl.full([BLOCK_P], 1.0, dtype=tl.float32)
        ry = tl.full([BLOCK_P], 1.0, dtype=tl.float32)
        if NORMALIZE:
            sxx = tl.zeros([BLOCK_P], dtype=tl.float32)
            syy = tl.zeros([BLOCK_P], dtype=tl.float32)
            for c0 in range(0, C, BLOCK_C):
                offs_c = c0 + tl.arange(0, BLOCK_C)
                m = (offs_c < C)[:, None] & mask_p[None, :]
                xv = tl.load(x_base + offs_c[:, None] * sxc, mask=m, other=0.0).to(tl.float32)
                yv = tl.load(y_base + offs_c[:, None] * syc, mask=m, other=0.0).to(tl.float32)
                sxx += tl.sum(xv * xv, axis=0)
                syy += tl.sum(yv * yv, axis=0)
            rx = 1.0 / tl.sqrt(sxx + eps)
            ry = 1.0 / tl.sqrt(syy + eps)
            tl.store(S0 + out_offs, rx, mask=mask_p)
            tl.store(S1 + out_offs, ry, mask=mask_p)
        acc = tl.zeros([BLOCK_P], dtype=tl.float32)
        for c0 in range(0, C, BLOCK_C):
            offs_c = c0 + tl.arange(0, BLOCK_C)
            mask_c = offs_c < C
            m = mask_c[:, None] & mask_p[None, :]
            xv = tl.load(x_base + offs_c[:, None] * sxc, mask=m, other=0.0).to(tl.float32)
            yv = tl.load(y_base + offs_c[:, None] * syc, mask=m, other=0.0).to(tl.float32)
            d = xv * rx[None, :] - yv * ry[None, :]
            if KIND == 0:
                err = d * d
            else:
                err = tl.abs(d)
            if HAS_W:
                err = err * tl.load(W + offs_c, mask=mask_c, other=0.0).to(tl.float32)[:, None]
            acc += tl.sum(err, axis=0)
        tl.store(OUT + out_offs, acc, mask=mask_p)


@triton.jit
def _scaled_difference(x_base, y_base, W, offs_c, mask_c, m, sxc, syc, rx, ry, KIND: tl.constexpr, HAS_W: tl.constexpr):
    """One channel tile of the backward's ingredients: ``x^``, ``y^``, ``d = x^ - y^`` and the
    per-channel slope ``a = w phi'(d)`` (without the upstream gradient)."""
    xh = tl.load(x_base + offs_c[:, None] * sxc, mask=m, other=0.0).to(tl.float32) * rx[None, :]
    yh = tl.load(y_base + offs_c[:, None] * syc, mask=m, other=0.0).to(tl.float32) * ry[None, :]
    d = xh - yh
    if KIND == 0:
        a = 2.0 * d
    else:
        a = tl.where(d > 0, 1.0, tl.where(d < 0, -1.0, 0.0))
    if HAS_W:
        a = a * tl.load(W + offs_c, mask=mask_c, other=0.0).to(tl.float32)[:, None]
    return xh, yh, d, a


@triton.jit
def _feature_distance_bwd_kernel(
    X, Y, W, G, S0, S1, S2, DX, DY, DWP,
    C, P,
    sxn, sxc, sxp, syn, syc, syp,
    dxn, dxc, dxp, dyn, dyc, dyp,
    eps,
    NORMALIZE: tl.constexpr, KIND: tl.constexpr, HAS_W: tl.constexpr,
    NEED_DX: tl.constexpr, NEED_DY: tl.constexpr, NEED_DW: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):  # fmt: skip
    pid_p = tl.program_id(0)
    n = tl.program_id(1).to(tl.int64)
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    mask_p = offs_p < P
    x_base = X + n * sxn + offs_p[None, :] * sxp
    y_base = Y + n * syn + offs_p[None, :] * syp
    dx_base = DX + n * dxn + offs_p[None, :] * dxp
    dy_base = DY + n * dyn + offs_p[None, :] * dyp
    row = n * tl.num_programs(0) + pid_p
    stat_offs = n * P + offs_p
    g = tl.load(G + stat_offs, mask=mask_p, other=0.0).to(tl.float32)
    if KIND == 2:
        dot = tl.load(S0 + stat_offs, mask=mask_p, other=0.0)
        rx = tl.load(S1 + stat_offs, mask=mask_p, other=1.0)
        ry = tl.load(S2 + stat_offs, mask=mask_p, other=1.0)
        value = 1.0 - (dot + eps) * rx * ry
        g = tl.where((value >= 0.0) & (value <= 2.0), g, 0.0)
        common = (g * rx * ry)[None, :]
        px = ((dot + eps) * rx * rx)[None, :]
        py = ((dot + eps) * ry * ry)[None, :]
        half = (0.5 * (dot + eps))[None, :]
        rx2 = (rx * rx)[None, :]
        ry2 = (ry * ry)[None, :]
        for c0 in range(0, C, BLOCK_C):
            offs_c = c0 + tl.arange(0, BLOCK_C)
            mask_c = offs_c < C
            m = mask_c[:, None] & mask_p[None, :]
            xv = tl.load(x_base + offs_c[:, None] * sxc, mask=m, other=0.0).to(tl.float32)
            yv = tl.load(y_base + offs_c[:, None] * syc, mask=m, other=0.0).to(tl.float32)
            gx = -common * (yv - px * xv)
            gy = -common * (xv - py * yv)
            if HAS_W:
                wv = tl.load(W + offs_c, mask=mask_c, other=0.0).to(tl.float32)[:, None]
                gx = gx * wv
                gy = gy * wv
            if NEED_DX:
                tl.store(dx_base + offs_c[:, None] * dxc, gx.to(DX.dtype.element_ty), mask=m)
            if NEED_DY:
                tl.store(dy_base + offs_c[:, None] * dyc, gy.to(DY.dtype.element_ty), mask=m)
            if NEED_DW:
                part = -tl.sum(common * (xv * yv - half * (xv * xv * rx2 + yv * yv * ry2)), axis=1)
                tl.store(DWP + row * C + offs_c, part, mask=mask_c)
    else:
        rx = tl.full([BLOCK_P], 1.0, dtype=tl.float32)
        ry = tl.full([BLOCK_P], 1.0, dtype=tl.float32)
        sax = tl.zeros([BLOCK_P], dtype=tl.float32)
        say = tl.zeros([BLOCK_P], dtype=tl.float32)
        if NORMALIZE:
            rx = tl.load(S0 + stat_offs, mask=mask_p, other=1.0)
            ry = tl.load(S1 + stat_offs, mask=mask_p, other=1.0)
            for c0 in range(0, C, BLOCK_C):
                offs_c = c0 + tl.arange(0, BLOCK_C)
                mask_c = offs_c < C
                m = mask_c[:, None] & mask_p[None, :]
                xh, yh, d, a = _scaled_difference(
                    x_base, y_base, W, offs_c, mask_c, m, sxc, syc, rx, ry, KIND=KIND, HAS_W=HAS_W
                )
                sax += tl.sum(a * xh, axis=0)
                say += tl.sum(a * yh, axis=0)
        for c0 in range(0, C, BLOCK_C):
            offs_c = c0 + tl.arange(0, BLOCK_C)
            mask_c = offs_c < C
            m = mask_c[:, None] & mask_p[None, :]
            xh, yh, d, a = _scaled_difference(
                x_base, y_base, W, offs_c, mask_c, m, sxc, syc, rx, ry, KIND=KIND, HAS_W=HAS_W
            )
            if NORMALIZE:
                gx = rx[None, :] * (a - xh * sax[None, :]) * g[None, :]
                gy = -ry[None, :] * (a - yh * say[None, :]) * g[None, :]
            else:
                gx = a * g[None, :]
                gy = -gx
            if NEED_DX:
                tl.store(dx_base + offs_c[:, None] * dxc, gx.to(DX.dtype.element_ty), mask=m)
            if NEED_DY:
                tl.store(dy_base + offs_c[:, None] * dyc, gy.to(DY.dtype.element_ty), mask=m)
            if NEED_DW:
                if KIND == 0:
                    phi = d * d
                else:
                    phi = tl.abs(d)
                part = tl.sum(phi * g[None, :], axis=1)
                tl.store(DWP + row * C + offs_c, part, mask=mask_c)


def _pixel_strides(t: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """``(tensor, (stride_n, stride_c, stride_pixel))`` with H and W flattened into one pixel axis;
    copies only when no single pixel stride exists (neither NCHW- nor NHWC-like)."""
    h, w = t.shape[-2:]
    sn, sc, sh, sw = t.stride()
    if w == 1:
        sw = sh
    if h == 1:
        sh = sw * w
    if sh != sw * w:
        t = t.contiguous()
        sn, sc, sh, sw = t.stride()
    return t, (sn, sc, sw)


def _blocks(c: int, p: int) -> tuple[int, int, int]:
    block_p = min(128, triton.next_power_of_2(max(p, 1)))
    block_c = min(32, triton.next_power_of_2(max(c, 1)))
    num_warps = 4 if block_p * block_c >= 2048 else 2
    return block_c, block_p, num_warps


def _check(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None) -> None:
    if x.dim() != 4 or x.shape != y.shape:
        raise ValueError(f"expected x and y of the same shape (N, C, H, W), got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.device != y.device or (weight is not None and weight.device != x.device):
        raise ValueError("x, y and weight must be on the same device")
    if weight is not None and weight.shape != (x.shape[1],):
        raise ValueError(f"expected weight of shape ({x.shape[1]},), got {tuple(weight.shape)}")


def feature_distance_fwd_triton(
    x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, normalize: bool, kind: str, eps: float = EPS
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Launch the forward kernel: per-pixel error ``(N, H, W)`` float32 and per-pixel statistics."""
    _check(x, y, weight)
    n, c, h, w = x.shape
    p = h * w
    x, xs = _pixel_strides(x)
    y, ys = _pixel_strides(y)
    out = torch.empty(n, h, w, device=x.device, dtype=torch.float32)
    n_stats = 3 if kind == "cos" else (2 if normalize else 0)
    stats = [torch.empty(n, h, w, device=x.device, dtype=torch.float32) for _ in range(n_stats)]
    dummy = out
    block_c, block_p, num_warps = _blocks(c, p)
    grid = (triton.cdiv(p, block_p), n)
    wt = weight.contiguous() if weight is not None else dummy
    _feature_distance_fwd_kernel[grid](
        x, y, wt, out, *(stats + [dummy] * (3 - n_stats)),
        c, p, *xs, *ys, eps,
        NORMALIZE=normalize, KIND=_KIND_CODES[kind], HAS_W=weight is not None,
        BLOCK_C=block_c, BLOCK_P=block_p, num_warps=num_warps,
    )  # fmt: skip
    return out, tuple(stats)


def feature_distance_bwd_triton(
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
    """Launch the backward kernel: gradients for ``x``, ``y`` (their dtype and layout) and ``weight``,
    each only where ``needs`` asks for it."""
    need_x, need_y, need_weight_grad = needs
    _check(x, y, weight)
    _, c, h, w = x.shape
    p = h * w
    n = x.shape[0]
    x, xs = _pixel_strides(x)
    y, ys = _pixel_strides(y)
    dx = torch.empty_like(x) if need_x else x
    dy = torch.empty_like(y) if need_y else y
    _, dxs = _pixel_strides(dx)
    _, dys = _pixel_strides(dy)
    grad = grad.to(torch.float32).contiguous()
    block_c, block_p, num_warps = _blocks(c, p)
    grid = (triton.cdiv(p, block_p), n)
    partial = torch.empty(grid[0] * n if need_weight_grad else 1, c, device=x.device, dtype=torch.float32)
    dummy = grad
    stats = [s.contiguous() for s in saved] + [dummy] * (3 - len(saved))
    wt = weight.contiguous() if weight is not None else dummy
    _feature_distance_bwd_kernel[grid](
        x, y, wt, grad, *stats, dx, dy, partial,
        c, p, *xs, *ys, *dxs, *dys, eps,
        NORMALIZE=normalize, KIND=_KIND_CODES[kind], HAS_W=weight is not None,
        NEED_DX=need_x, NEED_DY=need_y, NEED_DW=need_weight_grad,
        BLOCK_C=block_c, BLOCK_P=block_p, num_warps=num_warps,
    )  # fmt: skip
    return (dx if need_x else None), (dy if need_y else None), (partial.sum(0) if need_weight_grad else None)
