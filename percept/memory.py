"""Foreseeable out-of-memory: estimate a pass's activation memory before running it.

The estimate is a lower bound built from the backbone's traced stage shapes: with a graph, every
stage output up to the deepest tap is kept for backward; without one, two consecutive outputs live
at a time. When even that lower bound exceeds the memory available on the device, the pass could
only crash, so :func:`check_memory` raises a clear :class:`~percept.errors.InputError` instead.

On a GPU, asking the driver for free memory every step would add a call into the driver (and a host
wait) to every training step, so there a pass that fits is remembered per pipeline and input signature
(shapes, dtype, device, which inputs carry a graph) and not estimated again. On the CPU the check reads
``/proc/meminfo`` on every call: that costs microseconds and follows what other processes take.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from typing import Protocol

import torch

from percept.errors import InputError
from percept.validation import reads_synchronise

_fitted: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # pipeline -> signatures that fit
_fitted_lock = threading.Lock()
_FITTED_KEYS = 256  # signatures remembered per pipeline


class StageIndexed(Protocol):
    """A tap as :func:`check_memory` reads it: the index of its stage (a :class:`~percept.backbones.base.TapInfo`).

    Example:
        >>> create_backbone("alexnet", weights=None).tap_info("conv2").index  # doctest: +SKIP
        4
    """

    @property
    def index(self) -> int: ...


class ProbedBackbone(Protocol):
    """What :func:`check_memory` reads of a backbone; a :class:`~percept.backbones.base.Backbone` has it all.

    ``stage_shapes()`` is the public shape probe (:mod:`percept.backbones.probe`): ``(channels, reduction)``
    of every stage output. Declared here, not imported, because this module sits below the backbones.

    Example:
        >>> create_backbone("alexnet", weights=None).stage_shapes()[0]  # doctest: +SKIP
        StageShape(channels=64, reduction=4)
    """

    @property
    def input_size(self) -> tuple[int, int] | None: ...

    @property
    def resize(self) -> bool: ...

    def tap_info(self, name: str) -> StageIndexed: ...

    def stage_shapes(self) -> Sequence[tuple[int, int]]: ...


class ProbedPipeline(Protocol):
    """What :func:`check_memory` reads of a pipeline (a :class:`~percept.pipeline.Pipeline`): backbone and taps.

    Example:
        >>> pipeline = build_pipeline("alexnet:conv1,conv2/raw/l2", weights=None)  # doctest: +SKIP
        >>> pipeline.taps, pipeline.backbone.input_size  # doctest: +SKIP
        (['conv1', 'conv2'], None)
    """

    @property
    def backbone(self) -> ProbedBackbone: ...

    @property
    def taps(self) -> Sequence[str]: ...


def available_bytes(device: torch.device) -> int | None:
    """Memory free for tensors on ``device`` (CUDA: the driver's free memory; CPU: Linux'
    ``MemAvailable``), or ``None`` where it cannot be known."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def estimate_pass_bytes(
    stage_shapes: Sequence[tuple[int, int]], last: int, shape: Sequence[int], element_size: int, *, graph: bool
) -> int:
    """Lower bound of the activation memory of one backbone pass.

    Args:
        stage_shapes: ``(channels, reduction)`` of every stage output (``Backbone.stage_shapes()``).
        last: index of the deepest stage that runs.
        shape: input shape ``(N, C, H, W)``.
        element_size: bytes per element of the activations.
        graph: whether autograd keeps the stage outputs for backward.

    Example:
        >>> estimate_pass_bytes([(64, 1), (64, 2)], 1, (1, 3, 100, 100), 4, graph=True)
        3200000
    """
    n, _, h, w = shape
    sizes = [n * c * math.ceil(h / r) * math.ceil(w / r) * element_size for c, r in stage_shapes[: last + 1]]
    if graph:
        return sum(sizes)
    return max(a + b for a, b in zip([0, *sizes[:-1]], sizes, strict=True))


def check_memory(pipeline: ProbedPipeline, x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise :class:`InputError` if a pipeline pass over ``x`` and ``y`` cannot fit in memory.

    The message says how many pairs of this size would fit, so the caller can split the batch
    (``torch.split(x, k)``). percept does not split it itself: convolution kernels pick their algorithm
    by batch size, so scores computed in chunks can differ from one pass in the last bits.

    On a device where querying free memory synchronises (a GPU), a signature that fits once is not
    checked again for this pipeline (see the module docstring).
    """
    grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    remember = reads_synchronise(x.device)
    if remember:
        key = (tuple(x.shape), tuple(y.shape), x.dtype, x.device, grad, y.requires_grad)
        with _fitted_lock:
            if key in _fitted.get(pipeline, ()):
                return
    free = available_bytes(x.device)
    if free is None:
        return
    backbone = pipeline.backbone
    last = max(backbone.tap_info(t).index for t in pipeline.taps)
    shapes = backbone.stage_shapes()
    element = x.element_size() if x.is_floating_point() else 4

    def run_shape(n: int, t: torch.Tensor) -> tuple[int, ...]:
        """``n`` images of ``t``'s kind as the network sees them: a resizing backbone runs at its input size."""
        size = backbone.input_size if backbone.resize and backbone.input_size is not None else t.shape[2:]
        return (n, t.shape[1], *size)

    def need(n: int, graph: bool) -> int:
        return estimate_pass_bytes(shapes, last, run_shape(n, x), element, graph=graph) + estimate_pass_bytes(
            shapes, last, run_shape(n, y), element, graph=graph and y.requires_grad
        )

    total = need(x.shape[0], grad)
    if total <= free:
        if remember:
            with _fitted_lock:
                known = _fitted.setdefault(pipeline, set())
                if len(known) >= _FITTED_KEYS:
                    known.clear()
                known.add(key)
        return
    fits = free // max(need(1, grad), 1)
    if fits >= 1:
        advice = f"split the batch into chunks of at most {fits} (e.g. torch.split(x, {fits}))"
    else:
        advice = "even one pair of this size does not fit: pass smaller images or shallower taps"
    without_graph = free // max(need(1, False), 1)
    if grad and without_graph > fits:
        fit = "1 pair fits" if without_graph == 1 else f"{without_graph} pairs fit"
        advice += f"; without a graph (under torch.no_grad()) {fit}"
    raise InputError(
        f"scoring images of shape {tuple(x.shape)} needs at least {format_bytes(total)} for the network's "
        f"activations ({'with' if grad else 'without'} a graph), and {format_bytes(free)} are available on "
        f"{x.device}: {advice}"
    )


def format_bytes(n: int) -> str:
    """A byte count as people read it: GiB from 1 GiB up, else MiB, one decimal.

    Example:
        >>> format_bytes(3 * 2**30), format_bytes(512 * 2**20)
        ('3.0 GiB', '512.0 MiB')
    """
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
