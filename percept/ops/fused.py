"""The fused op as one ``torch.autograd.Function``, and the explicit choice of its backend.

Backends:

* ``"triton"``: the Triton kernels (CUDA tensors; on the CPU only under ``TRITON_INTERPRET=1``).
* ``"compiled"``: :mod:`percept.ops.fused_torch` through ``torch.compile`` (inductor fuses each
  function into single loops over memory), with dynamic shapes: each function is compiled once per
  set of flags, dtype and layout class, and that code serves every image size. Chosen by ``auto`` or
  ``1`` rather than named, each function runs eagerly until compiling would have saved, on the eager
  calls so far, what a compile costs (before the first compile of a process, the calls of every
  function count together, since most of that compile is paid once for all), and is compiled then: a
  short job never waits for the compiler, a long one pays for one compile, and neither costs more than
  twice the better choice. A shape whose calls keep coming (a training loop's feature maps) then gets
  code specialised to its sizes by the same rule. Concurrent
  calls compile once. If compiling fails (no C++ compiler), it falls back to ``"eager"`` with one
  warning. The rule and its bookkeeping: :mod:`percept.ops.compiling`.
* ``"eager"``: the same math in the fewest passes eager torch allows (:mod:`percept.ops.fused_eager`).
* ``"reference"``: :func:`percept.ops.reference.feature_distance_reference` under plain autograd
  (keeps normalised and difference tensors for backward: the oracle, not a fast path).

Every backend but ``reference`` saves only the two inputs, the weight and ``(N, H, W)`` per-pixel
statistics for backward.

``PERCEPT_FUSED`` picks: ``0`` the reference, ``1`` the fused function (triton on CUDA, compiled on
CPU), ``auto`` (default; also an empty value) the same as ``1`` except that CPU inputs below
:data:`COMPILE_MIN_ELEMENTS` run eagerly, where compiling does not pay. ``reference``, ``eager``,
``compiled`` and ``triton`` name a backend outright. Any other value is an
:class:`~percept.errors.InputError` naming these (:func:`fused_setting`, which
:class:`~percept.PerceptualLoss` calls at construction, so a typo fails once, before any image is scored).
"""

from __future__ import annotations

import functools
import os

import torch

from percept.errors import InputError
from percept.ops.compiling import compile_failed, run_compiled
from percept.ops.fused_eager import eager_backward, eager_forward
from percept.ops.reference import autograd_records, feature_distance_reference

BACKENDS = ("reference", "eager", "compiled", "triton")
COMPILE_MIN_ELEMENTS = 1 << 18  # 256k elements (1 MiB of float32) per input

LAZY_COMPILED = "compiled-when-paid"
"""Internal backend name: ``compiled`` when the eager calls have paid for it (``auto``, ``1``)."""


def triton_available() -> bool:
    """Whether Triton can be imported (it ships with CUDA builds of torch)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "") == "1"


SETTINGS = ("auto", "0", "1", *BACKENDS)
"""What ``$PERCEPT_FUSED`` accepts (case-insensitive; an empty or unset variable means ``auto``)."""
_ALIASES = {"": "auto", "false": "0", "off": "0", "no": "0", "true": "1", "on": "1", "yes": "1"}


@functools.lru_cache(maxsize=16)
def _parse_setting(raw: str, source: str) -> str:
    mode = raw.strip().lower()
    mode = _ALIASES.get(mode, mode)
    if mode not in SETTINGS:
        raise InputError(
            f"{source} must be one of auto (the default; also empty), 0 (the reference), 1 (the fused op), "
            f"{', '.join(BACKENDS)}; got {raw!r}"
        )
    return mode


def fused_setting(requested: str | None = None) -> str:
    """The fused-op setting in force: ``requested`` if given, else ``$PERCEPT_FUSED`` (unset or empty:
    ``"auto"``), normalised to one of :data:`SETTINGS`.

    Call it once at start-up to fail early: :class:`~percept.PerceptualLoss` does so at construction.

    Raises:
        InputError: an unknown value, naming the allowed ones; ``triton`` where it cannot run (triton not
            installed, or no CUDA GPU and no ``TRITON_INTERPRET=1``).

    Example:
        >>> fused_setting("Eager"), fused_setting("off")
        ('eager', '0')
    """
    source, raw = (
        ("backend", requested) if requested is not None else ("PERCEPT_FUSED", os.environ.get("PERCEPT_FUSED", ""))
    )
    mode = _parse_setting(raw, source)
    if mode == "triton":
        _check_triton(source)
    return mode


def _check_triton(source: str) -> None:
    """Refuse the Triton backend where it cannot run: without triton, or without a CUDA GPU (unless interpreted)."""
    what = "PERCEPT_FUSED=triton" if source == "PERCEPT_FUSED" else "backend 'triton'"
    if not triton_available():
        raise InputError(
            f"{what} needs the triton package, which is not installed (it ships with CUDA builds of torch); "
            "unset PERCEPT_FUSED (auto: Triton on CUDA where available, else the compiled or eager op)"
        )
    if not torch.cuda.is_available() and not _interpret():
        raise InputError(
            f"{what} runs on CUDA GPUs and this machine has none; unset PERCEPT_FUSED (auto picks the compiled or "
            "eager op on the CPU), or set TRITON_INTERPRET=1 to run Triton's interpreter on the CPU (slow; tests)"
        )


def choose_backend(x: torch.Tensor, requested: str | None = None) -> str:
    """The backend for input ``x``: from ``requested``, else ``$PERCEPT_FUSED`` (see the module doc).

    Example:
        >>> choose_backend(torch.zeros(1, 8, 4, 4), "eager")
        'eager'
    """
    mode = fused_setting(requested)
    if mode in BACKENDS:
        return mode
    if mode == "0":
        return "reference"
    if x.is_cuda and triton_available():
        return "triton"
    if x.device.type == "cpu" and (mode != "auto" or x.numel() >= COMPILE_MIN_ELEMENTS) and not compile_failed():
        return "compiled"
    return "eager"


def _run_fwd(backend: str, x, y, weight, normalize: bool, kind: str):
    if backend == "triton":
        from percept.ops.triton_kernels import feature_distance_fwd_triton

        return feature_distance_fwd_triton(x, y, weight, normalize, kind)
    args = (x, y, weight, normalize, kind)
    if backend in ("compiled", LAZY_COMPILED):
        flags = (kind, normalize, weight is not None)
        return run_compiled("fwd", flags, x.dtype, (x, y, weight), args, lazy=backend == LAZY_COMPILED)
    return eager_forward(*args)


def _run_bwd(backend: str, grad, x, y, weight, stats, normalize: bool, kind: str, needs: tuple[bool, bool, bool]):
    if backend == "triton":
        from percept.ops.triton_kernels import feature_distance_bwd_triton

        return feature_distance_bwd_triton(grad, x, y, weight, stats, normalize, kind, needs)
    args = (grad, x, y, weight, stats, normalize, kind, needs)
    if backend in ("compiled", LAZY_COMPILED):
        flags = (kind, normalize, weight is not None, *needs)
        lazy = backend == LAZY_COMPILED
        return run_compiled("bwd", flags, x.dtype, (grad, x, y, weight, *stats), args, lazy=lazy)
    return eager_backward(*args)


class FeatureDistanceFunction(torch.autograd.Function):
    """Per-pixel fused feature distance ``(N, H, W)``; backward by recomputation.

    ``apply(x, y, weight, normalize, kind, backend)`` with ``x, y`` ``(N, C, H, W)``, ``weight``
    ``(C,)`` or ``None`` returns ``(per_pixel, *stats)``: the ``(N, H, W)`` map, then the per-pixel
    statistics the backward reuses (outputs, not differentiable, so that ``torch.func`` transforms may
    keep them: they save only inputs and outputs). Works under ``torch.func.grad``/``vjp`` (forward,
    ``setup_context`` and backward are separate) and ``torch.func.vmap`` (the ``vmap`` rule folds the
    mapped dimension into the batch: every sample is independent, so one call covers all).
    """

    @staticmethod
    def forward(x, y, weight, normalize: bool, kind: str, backend: str):
        per_pixel, stats = _run_fwd(backend, x, y, weight, normalize, kind)
        return (per_pixel, *stats)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, y, weight, normalize, kind, backend = inputs
        _, *stats = output
        ctx.mark_non_differentiable(*stats)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, y, weight, *stats)
        ctx.normalize, ctx.kind, ctx.backend = normalize, kind, backend

    @staticmethod
    def backward(ctx, grad, *_stat_grads):
        if grad is None:
            return None, None, None, None, None, None
        x, y, weight, *stats = ctx.saved_tensors
        needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], weight is not None and ctx.needs_input_grad[2])
        if autograd_records(grad, x, y, weight):
            gx, gy, gw = _differentiable_backward(grad, x, y, weight, ctx.normalize, ctx.kind, needs)
        else:
            gx, gy, gw = _run_bwd(
                ctx.backend, grad.contiguous(), x, y, weight, tuple(stats), ctx.normalize, ctx.kind, needs
            )
        if gw is not None:
            gw = gw.to(weight.dtype)
        return gx, gy, gw, None, None, None

    @staticmethod
    def vmap(info, in_dims, x, y, weight, normalize: bool, kind: str, backend: str):
        x_dim, y_dim, w_dim = in_dims[:3]
        size = info.batch_size
        if w_dim is not None:  # a weight per mapped slice: one call per slice
            outs = [
                FeatureDistanceFunction.apply(
                    _select(x, x_dim, i), _select(y, y_dim, i), weight.select(w_dim, i), normalize, kind, backend
                )
                for i in range(size)
            ]
            return tuple(torch.stack(parts) for parts in zip(*outs, strict=True)), (0,) * len(outs[0])
        out = FeatureDistanceFunction.apply(
            _fold(x, x_dim, size), _fold(y, y_dim, size), weight, normalize, kind, backend
        )
        return tuple(o.unflatten(0, (size, -1)) for o in out), (0,) * len(out)


def _differentiable_backward(grad, x, y, weight, normalize: bool, kind: str, needs: tuple[bool, bool, bool]):
    """The backward as a differentiable function of its inputs: the vector-Jacobian product of the reference
    math, so that second derivatives (a gradient penalty, ``torch.func.hessian``) are right. The fused
    backends compute gradients by hand, treating the per-pixel statistics as constants, which is exact for
    the first derivative only."""

    def per_pixel(a, b, *w):
        out = feature_distance_reference(a, b, w[0] if w else None, normalize=normalize, kind=kind, spatial=True)
        return out.squeeze(1)

    primals = (x, y) if weight is None else (x, y, weight)
    vjp = torch.func.vjp(per_pixel, *primals)[1]
    grads = vjp(grad)
    gx = grads[0] if needs[0] else None
    gy = grads[1] if needs[1] else None
    gw = grads[2] if weight is not None and needs[2] else None
    return gx, gy, gw


def _select(t: torch.Tensor, dim: int | None, i: int) -> torch.Tensor:
    return t if dim is None else t.select(dim, i)


def _fold(t: torch.Tensor, dim: int | None, size: int) -> torch.Tensor:
    """``t`` with its mapped dimension ``dim`` (``None``: not mapped, repeated) merged into the batch."""
    t = t.expand(size, *t.shape) if dim is None else t.movedim(dim, 0)
    return t.flatten(0, 1)


def _transformed(*tensors: torch.Tensor | None) -> bool:
    """Whether any tensor is wrapped by a ``torch.func`` transform (vmap's batched, grad's tracking tensors)."""
    wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return wrapped is not None and any(t is not None and wrapped(t) for t in tensors)


def fused_feature_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor | None,
    *,
    normalize: bool,
    kind: str,
    backend: str,
) -> torch.Tensor:
    """Per-pixel error ``(N, H, W)`` through the chosen fused backend (not ``reference``)."""
    needs_graph = torch.is_grad_enabled() and (
        x.requires_grad or y.requires_grad or (weight is not None and weight.requires_grad)
    )
    if not needs_graph and not _transformed(x, y, weight):
        return _run_fwd(backend, x, y, weight, normalize, kind)[0]
    # Under torch.func transforms the Function's rules apply (the kernels never see wrapped tensors).
    return FeatureDistanceFunction.apply(x, y, weight, normalize, kind, backend)[0]
