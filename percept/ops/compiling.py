"""When and how the fused op compiles on the CPU: the compile-when-paid rule and its bookkeeping.

:func:`run_compiled` runs one function of the fused op (forward or backward) for one set of flags: through
``torch.compile`` of :mod:`percept.ops.fused_torch` once the rule says so, eagerly
(:mod:`percept.ops.fused_eager`) before that, and eagerly for good, with one warning, if compiling fails.
The rule (see :class:`Variant`): named (``backend="compiled"``), a function compiles at its first call;
chosen (``auto``, ``1``), after eager calls have cost :func:`eager_budget` seconds (what compiling would
have saved on them by then is a compile's price); a shape whose calls keep coming gets code specialised
to its sizes once they have cost :func:`compile_price`.
"""

from __future__ import annotations

import contextlib
import threading
import time
import types
import warnings
from collections.abc import Callable

import torch

from percept.ops.fused_eager import eager_backward, eager_forward
from percept.ops.fused_torch import fused_backward_torch, fused_forward_torch

COMPILE_AFTER_SECONDS = 5.0
"""What the first compile of a process is expected to cost before one has been timed: about what it costs
on a CPU (5 to 25 s on 2 cores, less with torch's on-disk cache)."""
COMPILED_SHARE = 0.6
"""What a compiled call takes, as a share of the eager call it replaces: from 0.48 to 0.66, median 0.60, over
the five shapes of ``benchmarks/bench_ops.py`` (steady state, forward and backward, 2-core CPU; the ``fused``
and ``eager`` rows of its block in docs/benchmarks.md). Compiling saves the rest, so the eager calls pay for a
compile once they have cost its price divided by ``1 - COMPILED_SHARE``."""
STATIC_SHAPES = 8
"""At most this many shapes per variant get code specialised to their sizes (see :class:`Variant`)."""

_variants: dict[tuple, Variant] = {}
_compile_failed = False
_last_compile_seconds: float | None = None
_import_seconds: float | None = None
_eager_seconds = 0.0  # every variant's eager calls in all (the budget holds it until the first compile)
_lock = threading.Lock()


def compile_price() -> float:
    """What a compile is expected to cost, in seconds: what the last one this process paid for took, or
    :data:`COMPILE_AFTER_SECONDS` before any.

    The compiler's import (dynamo and inductor, 2 to 3 s on a 2-core CPU), which the first compile of a
    process pays once, is timed apart (:func:`import_seconds`) and not part of the price: the calls that
    come after it never pay it again. With the import done and torch's on-disk caches warm, a compile
    often costs a fraction of the first.

    Example:
        >>> compile_price() >= 0
        True
    """
    last = _last_compile_seconds
    return COMPILE_AFTER_SECONDS if last is None else max(last, 1e-3)


def eager_budget() -> float:
    """Eager seconds a chosen (not named) compiled backend spends before compiling: those on which compiling
    would have saved a compile's price, ``price / (1 - COMPILED_SHARE)``, the price at most
    :data:`COMPILE_AFTER_SECONDS` (less once a compile has shown what it costs).

    Example:
        >>> 0 <= eager_budget() <= COMPILE_AFTER_SECONDS / (1 - COMPILED_SHARE)
        True
    """
    return min(COMPILE_AFTER_SECONDS, compile_price()) / (1 - COMPILED_SHARE)


def import_seconds() -> float | None:
    """What importing the compiler cost this process (paid by its first compile), or ``None`` before that.

    Example:
        >>> import_seconds() is None or import_seconds() >= 0
        True
    """
    return _import_seconds


def _import_compiler() -> None:
    """Import what a compile's first call imports (dynamo, inductor's entry point), once, and time it."""
    global _import_seconds
    if _import_seconds is not None:
        return
    start = time.perf_counter()
    _import_cpp_extension_quietly()
    # What torch.compile imports at its first call (these modules are torch's own, not an API percept calls
    # into: importing them changes nothing but when their import is paid), imported here to time it apart.
    import torch._dynamo
    import torch._inductor.compile_fx  # noqa: F401

    _import_seconds = time.perf_counter() - start


def _own_code(fn: Callable, name: str) -> Callable:
    """A copy of ``fn`` with its own code object: dynamo caches compiled code per code object, so each
    copy gets its own cache instead of all variants competing for one (``cache_size_limit``)."""
    code = fn.__code__.replace(co_name=name)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


def _compile(fn: Callable, dynamic: bool = True) -> Callable:
    """``torch.compile`` with every size symbolic (one compiled function serves every image size), or, with
    ``dynamic=False``, specialised to the sizes of its first call."""
    _import_compiler()
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
        # the one torch setting percept changes through a private module: torch has no public switch for duck shaping
        # (torch.compiler.config and torch.compile's options have none); without it, it stays on (a recompile).
        from torch.fx.experimental import _config
    except ImportError:  # pragma: no cover - older torch
        return contextlib.nullcontext()
    return _config.patch(use_duck_shape=False)  # type: ignore[attr-defined]  # set by torch's config module


class Variant:
    """One function of the fused op (forward or backward) for one set of flags, dtype and layout class.

    Named (``lazy`` false), compiled at its first call. Chosen (``lazy``), compiled once, with dynamic
    shapes, when eager calls have taken :func:`eager_budget` seconds. This is the ski-rental rule: the rent
    is what each eager call costs beyond the compiled call that would replace it (``1 - COMPILED_SHARE`` of
    it), the purchase a compile; buying once the rent paid equals the price, the total is at most twice
    what the better of "never compile" and "compile at once" would have cost, without knowing how many
    calls will come. (Counting the whole eager call as rent, as this rule once did, compiles too early: a
    30 s job then paid a 5 s compile to save less than that.) Most of the first compile
    of a process is paid once for every variant (importing and setting up the compiler), so until then the
    eager seconds of all variants count together (a forward and its backward reach the budget in half the
    time); after it, each variant's own count against what a compile has since cost. One thread compiles;
    calls from other threads run eagerly meanwhile instead of compiling again.

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

    def __call__(self, args: tuple, lazy: bool):
        if self.compiled is not None:
            return self._compiled_call(args)
        if (lazy and self._spent() < eager_budget()) or not self._compiling.acquire(blocking=False):
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

    def _spent(self) -> float:
        """The eager seconds that the budget is held against: before the process's first compile, those of
        every variant (the compiler's import and set-up, most of that compile's cost, are paid once for all);
        after it, this variant's own (what remains is its own compile)."""
        return _eager_seconds if _last_compile_seconds is None else self.eager_seconds

    def _timed(self, fn: Callable, args: tuple, shape: tuple | None):
        """``fn(*args)``, its time added to the eager seconds (``shape`` None) or to that shape's seconds."""
        start = time.perf_counter()
        out = fn(*args)
        spent = time.perf_counter() - start
        global _eager_seconds
        if shape is None:
            with _lock:  # the total is shared by every variant, so the module's lock, not this variant's
                self.eager_seconds += spent
                _eager_seconds += spent
        else:
            with self._count_lock:
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
        if len(self.static) >= STATIC_SHAPES:  # no more specialisations: nothing left to time or count
            return self.compiled(*args)
        spent = self.shape_seconds.get(shape)  # None: the first call of this shape, which runs the dynamic code
        due = spent is not None and spent >= compile_price()
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


def _variant(which: str, flags: tuple, dtype: torch.dtype, tensors: tuple) -> Variant | None:
    """The :class:`Variant` for these flags and the layout class of ``tensors``, or ``None`` when the
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
            variant = _variants[key] = Variant(base, eager, name)
    return variant


def compile_count() -> int:
    """How many times the fused op's functions have been compiled in this process (one per variant at most).

    Example:
        >>> compile_count() >= 0
        True
    """
    with _lock:
        return sum(v.compiles for v in _variants.values())


def compile_failed() -> bool:
    """Whether a compile has failed in this process (the fused op then runs eagerly).

    Example:
        >>> isinstance(compile_failed(), bool)
        True
    """
    return _compile_failed


def run_compiled(which: str, flags: tuple, dtype: torch.dtype, tensors: tuple, args: tuple, *, lazy: bool):
    """Run the fused op's ``which`` function (``"fwd"``, ``"bwd"``) on ``args`` by the compile rule.

    Args:
        which: ``"fwd"`` (:func:`~percept.ops.fused_torch.fused_forward_torch`'s arguments) or ``"bwd"``.
        flags: what selects the variant besides dtype and layout (kind, normalise, weighted, needs).
        dtype: the feature maps' dtype.
        tensors: the tensors whose layouts select the variant (``None`` for an absent weight).
        args: the function's arguments.
        lazy: chosen rather than named: eager until :func:`eager_budget` seconds (else compiled at once).

    Returns:
        What the function returns, compiled or eager (the same values to rounding).
    """
    eager = eager_forward if which == "fwd" else eager_backward
    if _compile_failed:
        return eager(*args)
    args = _plain(args)
    variant = _variant(which, flags, dtype, tensors)
    if variant is None:
        return eager(*args)
    try:
        return variant(args, lazy)
    except Exception as exc:  # noqa: BLE001 - any compiler failure falls back to the same math, eagerly
        _fall_back(exc)
    return eager(*args)


def _plain(args: tuple) -> tuple:
    """``args`` with tensors detached: dynamo treats an ``nn.Parameter``'s shape as static (an LPIPS head's
    weight would fix the channel count and recompile for every tap), a plain tensor's as dynamic. The
    compiled functions compute gradients by hand, so nothing needs the autograd graph."""
    return tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)


def _fall_back(exc: Exception) -> None:
    global _compile_failed
    _compile_failed = True
    warnings.warn(
        f"percept: torch.compile of the fused op failed ({type(exc).__name__}: {str(exc)[:200]}); "
        "running it eagerly from now on (set PERCEPT_FUSED=eager to skip compiling)",
        RuntimeWarning,
        stacklevel=5,  # past run_compiled and fused's _run_fwd/_run_bwd: where it pointed before the split
    )
