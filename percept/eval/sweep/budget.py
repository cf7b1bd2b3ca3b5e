"""Whether a sweep's forward passes fit in the memory free, checked before the images are decoded at that size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from percept.errors import InputError
from percept.eval.sweep.taps import SweepTap

if TYPE_CHECKING:  # pragma: no cover
    from percept.backbones.base import Backbone


def check_sweep_memory(
    net: Backbone, taps: Sequence[SweepTap], shape: tuple[int, ...], batch: int, device: torch.device, name: str
) -> None:
    """Refuse image sizes whose pass cannot fit in memory: a batch's pass plus the reference's kept taps.

    The need is a lower bound (:func:`percept.memory.estimate_pass_bytes` over the network's stage shapes):
    the decoded images, one pass of ``batch`` distorted images without a graph up to the deepest tap, and
    each tap output of the reference, which is kept while its distorted images are scored.

    Args:
        net: the backbone, on ``device``.
        taps: the taps swept (:func:`~percept.eval.sweep.sweep_taps`); the input tap costs nothing extra.
        shape: the shape of one image batch as decoded, ``(N, 3, H, W)`` (only ``H, W`` are read).
        batch: distorted images per pass.
        device: where the network runs.
        name: the backbone's name, for the message.

    Raises:
        InputError: the lower bound exceeds the memory free on ``device``, with the sizes and what to change.

    Example:
        >>> net = create_backbone("alexnet", weights=None)  # doctest: +SKIP
        >>> taps, cpu = sweep_taps(net), torch.device("cpu")  # doctest: +SKIP
        >>> check_sweep_memory(net, taps, (1, 3, 64, 64), 8, cpu, "alexnet")  # doctest: +SKIP
    """
    from percept.memory import available_bytes, estimate_pass_bytes, format_bytes

    stages = [t.depth - 1 for t in taps if t.module]
    if not stages:
        return
    size = tuple(net.input_size) if net.resize and net.input_size is not None else tuple(shape[-2:])
    shapes = net.stage_shapes()  # the public probe (percept.backbones.probe)
    last = max(stages)
    need = (batch + 1) * 3 * shape[-2] * shape[-1] * 4  # the decoded images
    need += estimate_pass_bytes(shapes, last, (batch, 3, *size), 4, graph=False)
    need += sum(estimate_pass_bytes([shapes[i]], 0, (1, 3, *size), 4, graph=True) for i in stages)
    free = available_bytes(device)
    if free is not None and need > free:
        raise InputError(
            f"images of {shape[-2]}x{shape[-1]} pixels need at least {format_bytes(need)} to sweep {name} in "
            f"batches of {batch}, but {format_bytes(free)} is free: resize them down (resize=, CLI --resize) or "
            "lower the batch size"
        )
