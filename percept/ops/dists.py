"""DISTS' numeric kernels (Ding, Ma, Wang & Simoncelli 2020), with hand-written backward passes.

:func:`dists_terms`: the per-channel texture (mean) and structure (covariance) similarities of two
feature maps, computed block by block in cache-sized buffers. :func:`l2pool`: Hanning-window L2
pooling, ``sqrt(depthwise_conv(x^2, g, stride) + 1e-12)``, keeping no squared copy of the input.
Both work under ``torch.func`` (``vmap``, ``grad``). :mod:`percept.builtin.dists` builds DISTS on them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from percept.errors import InputError
from percept.ops.reference import autograd_records

C1 = C2 = 1e-6


_BLOCK = 1 << 19  # elements per block of the statistics' temporaries on the CPU (2 MiB in float32: cache-sized)
_BLOCK_GPU = 1 << 24  # on a GPU, few large blocks: each block costs kernel launches, not cache misses


def _centred_sums(a: torch.Tensor, b: torch.Tensor, a_mean: torch.Tensor, b_mean: torch.Tensor):
    """Per row of ``(R, n)`` maps: ``sum (a - mu_a)^2``, ``sum (b - mu_b)^2`` and ``sum (a' - b')^2``.

    ``a' = a - mu_a`` and ``b' = b - mu_b`` are formed one block of at most ``_BLOCK`` elements at a
    time in two reused buffers (in float32, or the inputs' wider type), so no temporary is as large
    as the features and each block is read from memory once (on a GPU, blocks of ``_BLOCK_GPU``).
    With ``a == b`` the third sum is 0 exactly, whatever the rounding.
    """
    rows, n = a.shape
    block = _BLOCK if a.device.type == "cpu" else _BLOCK_GPU
    block_rows, block_cols = max(1, block // n), min(n, block)
    acc = a_mean.dtype
    work = torch.empty(2, min(rows, block_rows), block_cols, dtype=acc, device=a.device)
    sums = torch.zeros(3, rows, dtype=acc, device=a.device)
    for r0 in range(0, rows, block_rows):
        r1 = min(rows, r0 + block_rows)
        for c0 in range(0, n, block_cols):
            c1 = min(n, c0 + block_cols)
            ac, bc = work[0, : r1 - r0, : c1 - c0], work[1, : r1 - r0, : c1 - c0]
            torch.sub(a[r0:r1, c0:c1], a_mean[r0:r1], out=ac)
            torch.sub(b[r0:r1, c0:c1], b_mean[r0:r1], out=bc)
            sums[0, r0:r1] += torch.linalg.vector_norm(ac, dim=1).square()
            sums[1, r0:r1] += torch.linalg.vector_norm(bc, dim=1).square()
            sums[2, r0:r1] += torch.linalg.vector_norm(ac.sub_(bc), dim=1).square()
    return sums[0], sums[1], sums[2]


class _DISTSTerms(torch.autograd.Function):
    """Texture and structure similarities with a hand-written backward.

    Autograd of the textbook expression keeps four full-size temporaries per tap (the centred maps,
    their squares and product) and runs about ten elementwise passes over the features in backward;
    here the forward computes its statistics block by block in cache-sized buffers
    (:func:`_centred_sums`) and keeps only the inputs (which the backbone keeps anyway) and per-channel
    statistics, and the backward is one ``a * k_a + b * k_b + k_0`` per input that needs a gradient,
    from (with ``n = H W``, ``D = mu_a^2 + mu_b^2 + c1``, ``E = s_a^2 + s_b^2 + c2``)::

        dl/dmu_b = 2 (mu_a - l mu_b) / D          dl/db = dl/dmu_b / n
        ds/dcov = 2 / E,  ds/ds_b^2 = -s / E      ds/db = (2 (a - mu_a) / E - 2 s (b - mu_b) / E) / n
    """

    @staticmethod
    def forward(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch, channels = a.shape[:2]
        n = a.shape[2] * a.shape[3]
        acc = torch.promote_types(a.dtype, torch.float32)  # half precision accumulates in float32
        a2, b2 = a.reshape(batch * channels, n), b.reshape(batch * channels, n)
        a_mean, b_mean = a2.mean(1, keepdim=True, dtype=acc), b2.mean(1, keepdim=True, dtype=acc)
        a_ss, b_ss, diff_ss = _centred_sums(a2, b2, a_mean, b_mean)
        a_mean, b_mean = a_mean.reshape(batch, channels), b_mean.reshape(batch, channels)
        d = a_mean**2 + b_mean**2 + C1
        e = (a_ss + b_ss).reshape(batch, channels) / n + C2
        texture = (2 * a_mean * b_mean + C1) / d
        # 2 cov = s_a^2 + s_b^2 - var(a - b), so s = 1 - var(a - b) / e: identical maps give exactly 1,
        # and nearly identical ones lose less to rounding than through 2 cov against s_a^2 + s_b^2.
        structure = 1 - diff_ss.reshape(batch, channels) / n / e
        # The statistics are outputs (not differentiable) so that torch.func transforms, which save only
        # inputs and outputs, can keep them for the backward.
        return texture, structure, a_mean, b_mean, d, e

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        a, b = inputs
        texture, structure, *stats = output
        ctx.mark_non_differentiable(*stats)
        ctx.save_for_backward(a, b, *stats, texture, structure)

    @staticmethod
    def vmap(info, in_dims, a: torch.Tensor, b: torch.Tensor):
        # Every (sample, channel) row is independent: fold the mapped dimension into the batch, one call.
        size = info.batch_size
        a, b = (
            t.expand(size, *t.shape) if dim is None else t.movedim(dim, 0)
            for t, dim in zip((a, b), in_dims, strict=True)
        )
        out = _DISTSTerms.apply(a.flatten(0, 1), b.flatten(0, 1))
        return tuple(o.unflatten(0, (size, -1)) for o in out), (0,) * len(out)

    @staticmethod
    def backward(ctx, g_texture: torch.Tensor, g_structure: torch.Tensor, *_stat_grads):
        a, b, a_mean, b_mean, d, e, texture, structure = ctx.saved_tensors
        if autograd_records(a, b, g_texture, g_structure):  # create_graph or a torch.func transform: see _terms_vjp
            return _terms_vjp(a, b, g_texture, g_structure, ctx.needs_input_grad[:2])
        n = a.shape[2] * a.shape[3]
        grads: list[torch.Tensor | None] = []
        for x, x_mean, other, other_mean, need in (
            (a, a_mean, b, b_mean, ctx.needs_input_grad[0]),
            (b, b_mean, a, a_mean, ctx.needs_input_grad[1]),
        ):
            if not need:
                grads.append(None)
                continue
            # The 1 / n of every term is folded into the per-channel factors: two passes over the maps.
            k_mu = g_texture * 2 * (other_mean - texture * x_mean) / (d * n)  # through mu_x
            k_other = g_structure * 2 / (e * n)  # through the covariance: (other - other_mean)
            k_self = -g_structure * 2 * structure / (e * n)  # through the variance: (x - x_mean)
            k_0 = k_mu - k_other * other_mean - k_self * x_mean
            grad = torch.addcmul(k_0[:, :, None, None], other.to(k_0.dtype), k_other[:, :, None, None])
            if torch._C._functorch.is_functorch_wrapped_tensor(grad):  # vmap has no batching rule for addcmul_
                grad = torch.addcmul(grad, x.to(k_0.dtype), k_self[:, :, None, None])
            else:
                grad.addcmul_(x.to(k_0.dtype), k_self[:, :, None, None])
            grads.append(grad.to(x.dtype))
        return grads[0], grads[1]


def _terms_reference(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The textbook expression of :func:`dists_terms` (same formulas, full-size temporaries), differentiable."""
    acc = torch.promote_types(a.dtype, torch.float32)
    a, b = a.to(acc), b.to(acc)
    n = a.shape[2] * a.shape[3]
    a_mean, b_mean = a.mean((2, 3), keepdim=True), b.mean((2, 3), keepdim=True)
    ac, bc = a - a_mean, b - b_mean
    a_mean, b_mean = a_mean.flatten(1), b_mean.flatten(1)
    e = (ac.square().sum((2, 3)) + bc.square().sum((2, 3))) / n + C2
    texture = (2 * a_mean * b_mean + C1) / (a_mean**2 + b_mean**2 + C1)
    return texture, 1 - (ac - bc).square().sum((2, 3)) / n / e


def _terms_vjp(a, b, g_texture, g_structure, needs):
    """The backward as a differentiable function of its inputs (the vector-Jacobian product of
    :func:`_terms_reference`), so that second derivatives are right: the hand-written backward treats the
    per-channel statistics as constants, which is exact for the first derivative only."""
    vjp = torch.func.vjp(_terms_reference, a, b)[1]
    ga, gb = vjp((g_texture, g_structure))[:2]
    return (ga.to(a.dtype) if needs[0] else None), (gb.to(b.dtype) if needs[1] else None)


def dists_terms(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DISTS' per-channel texture (mean) and structure (covariance) similarities.

    Population statistics over ``H, W`` (in float32 for half-precision inputs), the covariance of
    centred maps (so identical features give exactly 1); differentiable in both inputs with a
    backward that keeps no temporaries as large as the features.

    Args:
        a, b: ``(N, C, H, W)`` features of one tap (``(N, C)`` vectors count as 1x1 maps).

    Returns:
        ``(texture, structure)``, each ``(N, C)`` in ``[-1, 1]`` (1 for identical features), float32
        for half-precision inputs.

    Example:
        >>> x = torch.rand(2, 4, 8, 8)
        >>> [t.min().item() > 0.999 for t in dists_terms(x, x)]
        [True, True]
    """
    if a.dim() not in (2, 4) or a.shape != b.shape:
        raise InputError(
            "DISTS compares two (N, C, H, W) feature maps (or (N, C) vectors) of the same shape, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.dim() == 2:  # vectors (a descriptor readout) count as 1x1 maps
        a, b = a[:, :, None, None], b[:, :, None, None]
    return _DISTSTerms.apply(a, b)[:2]


class L2PoolFunction(torch.autograd.Function):
    """``sqrt(depthwise_conv(x^2, g, stride) + 1e-12)`` keeping only ``x`` and the output for backward.

    Autograd of the three steps keeps ``x^2`` as well (as large as ``x``) and takes three passes over
    ``x`` for ``d(x^2)/dx``; here ``dx = x * conv_transpose(dout / out)`` (the 2 of ``d(x^2)`` and the
    1/2 of ``d sqrt`` cancel): one pass at the input's size. The forward's arithmetic is unchanged.
    """

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
        out = F.conv2d(x * x, weight, stride=stride, padding=padding, groups=x.shape[1])
        return out.add_(1e-12).sqrt_()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, stride, padding = inputs
        ctx.save_for_backward(x, weight, output)
        ctx.stride, ctx.padding = stride, padding

    @staticmethod
    def vmap(info, in_dims, x, weight, stride, padding):
        # torch.func.vmap: the mapped dimension folds into the batch, one call.
        x = x.expand(info.batch_size, *x.shape) if in_dims[0] is None else x.movedim(in_dims[0], 0)
        out = L2PoolFunction.apply(x.flatten(0, 1), weight, stride, padding)
        return out.unflatten(0, (info.batch_size, -1)), 0

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, out = ctx.saved_tensors
        # conv_transpose's output_padding recovers the rows and columns the strided conv dropped.
        extra = [
            size + 2 * ctx.padding - ((o - 1) * ctx.stride + weight.shape[-1])
            for size, o in zip(x.shape[2:], out.shape[2:], strict=True)
        ]
        back = F.conv_transpose2d(
            grad / out, weight, stride=ctx.stride, padding=ctx.padding, output_padding=extra, groups=x.shape[1]
        )
        # Under torch.func the gradient is a wrapped tensor that must not be written in place.
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor(back)
        return (back * x if wrapped else back.mul_(x)), None, None, None


def l2pool(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """L2 pooling of ``(N, C, H, W)`` maps with a depthwise ``(C, 1, k, k)`` window: ``sqrt(conv(x^2) + 1e-12)``.

    Example:
        >>> from percept.ops.windows import hann_window_2d
        >>> w = hann_window_2d(5).expand(2, 1, 3, 3)
        >>> l2pool(torch.ones(1, 2, 8, 8), w, 2, 1)[0, 0, 1, 1].item()
        1.0
    """
    return L2PoolFunction.apply(x, weight, stride, padding)
