"""Foreseeable out-of-memory: estimate a pass's activation memory before running it.

The estimate is a lower bound built from the backbone's traced stage shapes: with a graph, every
stage output up to the deepest tap is kept for backward; without one, two consecutive outputs live
at a time. When even that lower bound exceeds the memory available on the device, the pass could
only crash, so :func:`check_memory` raises a clear :class:`~percept.errors.InputError` instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from percept.errors import InputError


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
        stage_shapes: ``(channels, reduction)`` of every stage output (``Backbone._trace_shapes()``).
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


def check_memory(pipeline, x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise :class:`InputError` if a pipeline pass over ``x`` and ``y`` cannot fit in memory."""
    free = available_bytes(x.device)
    if free is None:
        return
    backbone = pipeline.backbone
    last = max(backbone.tap_info(t).index for t in pipeline.taps)
    shapes = backbone._trace_shapes()
    grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    element = x.element_size() if x.is_floating_point() else 4
    need = estimate_pass_bytes(shapes, last, x.shape, element, graph=grad)
    need += estimate_pass_bytes(shapes, last, y.shape, element, graph=grad and y.requires_grad)
    if need > free:
        gib = 2**30
        raise InputError(
            f"scoring images of shape {tuple(x.shape)} needs at least {need / gib:.1f} GiB for the network's "
            f"activations ({'with' if grad else 'without'} a graph), and {free / gib:.1f} GiB are available on "
            f"{x.device}: pass fewer images at a time, smaller images, or shallower taps"
        )
