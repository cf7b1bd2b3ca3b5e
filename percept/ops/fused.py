"""The fused op as one ``torch.autograd.Function``, and the explicit choice of its backend.

Backends:

* ``"triton"``: the Triton kernels (CUDA tensors; on the CPU only under ``TRITON_INTERPRET=1``).
* ``"compiled"``: :mod:`percept.ops.fused_torch` through ``torch.compile`` (inductor fuses each
  function into single loops over memory), with dynamic shapes: each function is compiled once per
  set of flags, dtype and layout class (seconds), and that code serves every image size. Chosen by
  ``auto`` or ``1`` rather than named, each function runs eagerly until its eager calls have taken
  :data:`COMPILE_AFTER_SECONDS`, about what a compile costs, and is compiled then: a short job (a first
  pass over a folder of mixed sizes) never waits for the compiler, a long one (training, a sweep) pays
  for one compile, and neither costs more than twice the better choice. After the first compile the budget
  is what that compile cost (:func:`compile_price`: with the compiler imported and torch's on-disk caches
  warm, later compiles cost a fraction of the first). A shape whose calls keep coming (a training loop's
  feature maps) gets code specialised to its sizes by the same rule. Concurrent calls compile once
  (the others run eagerly meanwhile). If compiling fails (no C++ compiler), it falls back to
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

import contextlib
import functools
import os
import threading
import time
import types
import warnings
from collections.abc import Callable

import torch

from percept.errors import InputError
from percept.ops.fused_eager import eager_backward, eager_forward
from percept.ops.fused_torch import fused_backward_torch, fused_forward_torch

BACKENDS = ("reference", "eager", "compiled", "triton")
COMPILE_MIN_ELEMENTS = 1 << 18  # 256k elements (1 MiB of float32) per input

COMPILE_AFTER_SECONDS = 5.0
"""Chosen rather than named, the compiled backend first runs each function eagerly until that has taken
this long in all: about what compiling it costs on a CPU (5 to 25 s on 2 cores, less with torch's
on-disk cache)."""
LAZY_COMPILED = "compiled-when-paid"
"""Internal backend name: ``compiled`` after :data:`COMPILE_AFTER_SECONDS` of eager calls (``auto``, ``1``)."""

STATIC_SHAPES = 8
"""At most this many shapes per variant get code specialised to their sizes (see :class:`_Variant`)."""

_variants: dict[tuple, _Variant] = {}
_compile_failed = False
_last_compile_seconds: float | None = None
_lock = threading.Lock()


def compile_price() -> float:
    """What a compile is expected to cost, in seconds: what the last one this process paid for took (with the
    compiler imported and its on-disk caches warm, often a fraction of the first), or
    :data:`COMPILE_AFTER_SECONDS` before any.

    Example:
        >>> compile_price() >= 0
        True
    """
    last = _last_compile_seconds
    return COMPILE_AFTER_SECONDS if last is None else max(last, 1e-3)


def _eager_budget() -> float:
    """Eager seconds a chosen (not named) compiled backend spends before compiling: at most
    :data:`COMPILE_AFTER_SECONDS`, less once a compile has shown what it costs."""
    return min(COMPILE_AFTER_SECONDS, compile_price())


def _own_code(fn: Callable, name: str) -> Callable:
    """A copy of ``fn`` with its own code object: dynamo caches compiled code per code object, so each
    copy gets its own cache instead of all variants competing for one (``cache_size_limit``)."""
    code = fn.__code__.replace(co_name=name)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


def _compile(fn: Callable, dynamic: bool = True) -> Callable:
    """``torch.compile`` with every size symbolic (one compiled function serves every image size), or, with
    ``dynamic=False``, specialised to the sizes of its first call."""
    _import_cpp_extension_quietly()
    return torch.compile(fn, dynamic=dynamic)


def _import_cpp_extension_quietly() -> None:
    """Import ``torch.utils.cpp_extension`` (which the compiler imports) without its notice.

    On a machine with CUDA's tools (``nvcc``, ``$CUDA_HOME``) but no GPU, that module logs "No CUDA runtime is
    found, using CUDA_HOME=..." when imported. It reads like an error but says only that CUDA kernels cannot
    be built here; the CPU code that percept compiles needs no CUDA, so the notice is kept from showing when
    percept triggers the import. Its other messages pass as they are.
    """
    import logging
    import sys

    if "torch.utils.cpp_extension" in sys.modules:
        return
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import torch.utils.cpp_extension  # noqa: F401 - imported for its side effect, under the raised level
    finally:
        logger.setLevel(level)


def _no_duck_shapes():
    """Trace without duck shaping: by default, sizes equal at trace time (a square map's H and W) share one
    symbol and a guard, so the first non-square map would recompile."""
    try:
        # torch's one private name percept reads, and only here: torch offers no public switch for duck shaping
        # (torch.compiler.config and torch.compile's options have none); without it, it stays on (a recompile).
        from torch.fx.experimental import _config
    except ImportError:  # pragma: no cover - older torch
        return contextlib.nullcontext()
    return _config.patch(use_duck_shape=False)  # type: ignore[attr-defined]  # set by torch's config module


class _Variant:
    """One function of the fused op (forward or backward) for one set of flags, dtype and layout class.

    Compiled once, with dynamic shapes, when its eager calls have taken ``budget`` seconds in all (0: at
    the first call). This is the ski-rental rule: with a budget about what a compile costs, the total
    is at most twice what the better of "never compile" and "compile at once" would have cost, without
    knowing how many calls will come. One thread compiles; calls from other threads run eagerly
    meanwhile instead of compiling again.

    The same rule then applies per shape: once the calls of one exact shape have spent :func:`compile_price`
    seconds in the dynamic code, that shape gets code specialised to its sizes (faster: known channel counts
    and map sizes let the compiler unroll and vectorise), for at most :data:`STATIC_SHAPES` shapes per
    variant. A training loop, whose feature maps repeat their shapes every step, ends on specialised code;
    a folder of mixed sizes stays on the dynamic one.
    """

    def __init__(self, base: Callable, eager: Callable, name: str) -> None:
        self.base, self.eager, self.name = base, eager, name
        self.compiled: Callable | None = None
        self.eager_seconds = 0.0
        self.compiles = 0
        self.static: dict[tuple, Callable] = {}
        self.shape_seconds: dict[tuple, float] = {}
        self._count_lock = threading.Lock()
        self._compiling = threading.Lock()

    def __call__(self, args: tuple, budget: float):
        if self.compiled is not None:
            return self._compiled_call(args)
        if self.eager_seconds < budget or not self._compiling.acquire(blocking=False):
            # Not yet worth a compile, or another thread is compiling this variant: run eagerly.
            return self._timed(self.eager, args, None)
        try:
            if self.compiled is None:
                fn = _compile(_own_code(self.base, self.name))
                out = self._first_call(fn, args)
                self.compiled = fn
                return out
        finally:
            self._compiling.release()
        return self._compiled_call(args)

    def _timed(self, fn: Callable, args: tuple, shape: tuple | None):
        """``fn(*args)``, its time added to the eager seconds (``shape`` None) or to that shape's seconds."""
        start = time.perf_counter()
        out = fn(*args)
        spent = time.perf_counter() - start
        with self._count_lock:
            if shape is None:
                self.eager_seconds += spent
            else:
                self.shape_seconds[shape] = self.shape_seconds.get(shape, 0.0) + spent
        return out

    def _first_call(self, fn: Callable, args: tuple):
        """Call a newly compiled ``fn`` (which compiles it), and record what the compile cost."""
        global _last_compile_seconds
        start = time.perf_counter()
        with _no_duck_shapes():
            out = fn(*args)
        _last_compile_seconds = time.perf_counter() - start
        self.compiles += 1
        return out

    def _compiled_call(self, args: tuple):
        shape = _shapes(args)
        fn = self.static.get(shape)
        if fn is not None:
            return fn(*args)
        assert self.compiled is not None
        spent = self.shape_seconds.get(shape)  # None: the first call of this shape, which runs the dynamic code
        due = spent is not None and spent >= compile_price() and len(self.static) < STATIC_SHAPES
        if due and self._compiling.acquire(blocking=False):
            try:
                if shape not in self.static:
                    fn = _compile(_own_code(self.base, f"{self.name}_static{len(self.static)}"), dynamic=False)
                    out = self._first_call(fn, args)
                    self.static[shape] = fn
                    return out
            finally:
                self._compiling.release()
        return self._timed(self.compiled, args, shape)


def _shapes(args: tuple) -> tuple:
    """The sizes of every tensor in ``args`` (tensors in tuples too): what a specialised compile fixes."""
    out: list = []
    for a in args:
        if isinstance(a, torch.Tensor):
            out.append(tuple(a.shape))
        elif isinstance(a, tuple):
            out.append(_shapes(a))
    return tuple(out)


def _layout(t: torch.Tensor | None) -> tuple | None:
    """What dynamo specialises on besides the flags: sizes 0 and 1, zero strides, memory format, offset."""
    if t is None:
        return ()
    if t.is_contiguous():
        fmt = "contiguous"
    elif t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        fmt = "channels_last"
    elif 0 in t.stride():
        fmt = "expanded"
    else:
        return None  # other strides: guards on stride relations could recompile; such calls run eagerly
    return (fmt, tuple(min(s, 2) for s in t.shape), tuple(s == 0 for s in t.stride()), t.storage_offset() == 0)


def _variant(which: str, flags: tuple, dtype: torch.dtype, tensors: tuple) -> _Variant | None:
    """The :class:`_Variant` for these flags and the layout class of ``tensors``, or ``None`` when the
    layout is one that is not compiled."""
    layouts = tuple(_layout(t) for t in tensors)
    if None in layouts:
        return None
    key = (which, flags, dtype, layouts)
    with _lock:
        variant = _variants.get(key)
        if variant is None:
            base, eager = (
                (fused_forward_torch, eager_forward) if which == "fwd" else (fused_backward_torch, eager_backward)
            )
            kind, *bits = flags
            code = "".join(str(int(f)) for f in bits)
            name = f"percept_fused_{which}_{kind}_{code}_{str(dtype).split('.')[-1]}_{len(_variants)}"
            variant = _variants[key] = _Variant(base, eager, name)
    return variant


def compile_count() -> int:
    """How many times the fused op's functions have been compiled in this process (one per variant at most).

    Example:
        >>> compile_count() >= 0
        True
    """
    with _lock:
        return sum(v.compiles for v in _variants.values())


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
    if x.device.type == "cpu" and (mode != "auto" or x.numel() >= COMPILE_MIN_ELEMENTS) and not _compile_failed:
        return "compiled"
    return "eager"


def _plain(args: tuple) -> tuple:
    """``args`` with tensors detached: dynamo treats an ``nn.Parameter``'s shape as static (an LPIPS head's
    weight would fix the channel count and recompile for every tap), a plain tensor's as dynamic. The
    compiled functions compute gradients by hand, so nothing needs the autograd graph."""
    return tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)


def _run_fwd(backend: str, x, y, weight, normalize: bool, kind: str):
    if backend == "triton":
        from percept.ops.triton_kernels import feature_distance_fwd_triton

        return feature_distance_fwd_triton(x, y, weight, normalize, kind)
    args = (x, y, weight, normalize, kind)
    if backend in ("compiled", LAZY_COMPILED) and not _compile_failed:
        args = _plain(args)
        variant = _variant("fwd", (kind, normalize, weight is not None), x.dtype, (x, y, weight))
        if variant is not None:
            try:
                return variant(args, _eager_budget() if backend == LAZY_COMPILED else 0.0)
            except Exception as exc:  # noqa: BLE001 - any compiler failure falls back to the same math, eagerly
                _fall_back(exc)
    return eager_forward(*args)


def _run_bwd(backend: str, grad, x, y, weight, stats, normalize: bool, kind: str, needs: tuple[bool, bool, bool]):
    if backend == "triton":
        from percept.ops.triton_kernels import feature_distance_bwd_triton

        return feature_distance_bwd_triton(grad, x, y, weight, stats, normalize, kind, needs)
    args = (grad, x, y, weight, stats, normalize, kind, needs)
    if backend in ("compiled", LAZY_COMPILED) and not _compile_failed:
        args = _plain(args)
        flags = (kind, normalize, weight is not None, *needs)
        variant = _variant("bwd", flags, x.dtype, (grad, x, y, weight, *stats))
        if variant is not None:
            try:
                return variant(args, _eager_budget() if backend == LAZY_COMPILED else 0.0)
            except Exception as exc:  # noqa: BLE001 - as above
                _fall_back(exc)
    return eager_backward(*args)


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
