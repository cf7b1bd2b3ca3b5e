"""The fused op as one ``torch.autograd.Function``, and the explicit choice of its backend.

Backends:

* ``"triton"``: the Triton kernels (CUDA tensors; on the CPU only under ``TRITON_INTERPRET=1``).
* ``"compiled"``: :mod:`percept.ops.fused_torch` through ``torch.compile`` (inductor fuses each
  function into single loops over memory). The first call per shape family compiles (seconds);
  later calls reuse the cached code. If compiling fails (no C++ compiler), it falls back to
  ``"eager"`` with one warning.
* ``"eager"``: the same functions, uncompiled.
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
import threading
import types
import warnings
from collections.abc import Callable

import torch

from percept.errors import InputError
from percept.ops.fused_torch import fused_backward_torch, fused_forward_torch

BACKENDS = ("reference", "eager", "compiled", "triton")
COMPILE_MIN_ELEMENTS = 1 << 18  # 256k elements (1 MiB of float32) per input

_compiled: dict[tuple, Callable] = {}
_compile_failed = False
_lock = threading.Lock()


def _own_code(fn: Callable, name: str) -> Callable:
    """A copy of ``fn`` with its own code object: dynamo caches compiled code per code object, so each
    copy gets its own cache instead of all variants competing for one (``cache_size_limit``)."""
    code = fn.__code__.replace(co_name=name)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


def _compiled_fn(
    which: str, normalize: bool, kind: str, has_weight: bool, dtype: torch.dtype, needs: tuple = ()
) -> Callable:
    """One compiled function per (direction, flags, dtype): only shapes vary within one, and they
    go dynamic after the first change."""
    key = (which, normalize, kind, has_weight, dtype, needs)
    with _lock:
        if key not in _compiled:
            base = fused_forward_torch if which == "fwd" else fused_backward_torch
            flags = "".join(str(int(f)) for f in (normalize, has_weight, *needs))
            name = f"percept_fused_{which}_{kind}_{flags}_{str(dtype).split('.')[-1]}"
            _compiled[key] = torch.compile(_own_code(base, name), dynamic=None)
    return _compiled[key]


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
        InputError: an unknown value, naming the allowed ones.

    Example:
        >>> fused_setting("Eager"), fused_setting("off")
        ('eager', '0')
    """
    if requested is not None:
        return _parse_setting(requested, "backend")
    return _parse_setting(os.environ.get("PERCEPT_FUSED", ""), "PERCEPT_FUSED")


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
    if x.device.type == "cpu" and (mode != "auto" or x.numel() >= COMPILE_MIN_ELEMENTS) and not _compile_failed:
        return "compiled"
    return "eager"


def _run_fwd(backend: str, x, y, weight, normalize: bool, kind: str):
    if backend == "triton":
        from percept.ops.triton_kernels import feature_distance_fwd_triton

        return feature_distance_fwd_triton(x, y, weight, normalize, kind)
    if backend == "compiled" and not _compile_failed:
        try:
            fn = _compiled_fn("fwd", normalize, kind, weight is not None, x.dtype)
            return fn(x, y, weight, normalize, kind)
        except Exception as exc:  # noqa: BLE001 - any compiler failure falls back to the same math, eagerly
            _fall_back(exc)
    return fused_forward_torch(x, y, weight, normalize, kind)


def _run_bwd(backend: str, grad, x, y, weight, stats, normalize: bool, kind: str, needs: tuple[bool, bool, bool]):
    if backend == "triton":
        from percept.ops.triton_kernels import feature_distance_bwd_triton

        return feature_distance_bwd_triton(grad, x, y, weight, stats, normalize, kind, needs)
    if backend == "compiled" and not _compile_failed:
        try:
            fn = _compiled_fn("bwd", normalize, kind, weight is not None, x.dtype, needs)
            return fn(grad, x, y, weight, stats, normalize, kind, needs)
        except Exception as exc:  # noqa: BLE001 - as above
            _fall_back(exc)
    return fused_backward_torch(grad, x, y, weight, stats, normalize, kind, needs)


def _fall_back(exc: Exception) -> None:
    global _compile_failed
    _compile_failed = True
    warnings.warn(
        f"percept: torch.compile of the fused op failed ({type(exc).__name__}: {str(exc)[:200]}); "
        "running it eagerly from now on (set PERCEPT_FUSED=eager to skip compiling)",
        RuntimeWarning,
        stacklevel=4,
    )


class FeatureDistanceFunction(torch.autograd.Function):
    """Per-pixel fused feature distance ``(N, H, W)``; backward by recomputation.

    ``apply(x, y, weight, normalize, kind, backend)`` with ``x, y`` ``(N, C, H, W)``, ``weight``
    ``(C,)`` or ``None``.
    """

    @staticmethod
    def forward(ctx, x, y, weight, normalize: bool, kind: str, backend: str):
        per_pixel, stats = _run_fwd(backend, x, y, weight, normalize, kind)
        ctx.save_for_backward(x, y, weight, *stats)
        ctx.normalize, ctx.kind, ctx.backend = normalize, kind, backend
        return per_pixel

    @staticmethod
    def backward(ctx, grad):
        x, y, weight, *stats = ctx.saved_tensors
        needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], weight is not None and ctx.needs_input_grad[2])
        gx, gy, gw = _run_bwd(
            ctx.backend, grad.contiguous(), x, y, weight, tuple(stats), ctx.normalize, ctx.kind, needs
        )
        if gw is not None:
            gw = gw.to(weight.dtype)
        return gx, gy, gw, None, None, None


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
    if not needs_graph:
        return _run_fwd(backend, x, y, weight, normalize, kind)[0]
    return FeatureDistanceFunction.apply(x, y, weight, normalize, kind, backend)
