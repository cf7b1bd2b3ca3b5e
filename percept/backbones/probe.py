"""The shape probe: what each stage of a backbone gives, found by running it on zeros, without weights.

A backbone's taps declare their channels and reduction (timm's ``feature_info``) because they are
*traced*, not written down: the network runs once on a zero image at its ``input_size`` (224 when it
has none), on the meta device where the backbone can build its architecture there (no memory, no
arithmetic), else on a CPU copy. The same run answers whether the network runs at a size at all, and a
binary search over it finds the smallest size at which every tap still has a pixel.

- :func:`stage_shapes` (or :meth:`ShapeProbe.stage_shapes` on a backbone): one :class:`StageShape`
  ``(channels, reduction)`` per stage, what memory estimates and the research toolkit read.
- :meth:`ShapeProbe.runs_at` and the minimum-size search behind
  :meth:`~percept.backbones.base.Backbone.min_size`.

:class:`ShapeProbe` is the part of :class:`~percept.backbones.base.Backbone` that does this; a backbone
that knows its shapes without a run (an embedding, one vector per tap) overrides ``_trace_shapes``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from percept.backbones.runner import StageRunner
from percept.errors import InputError

# What a network raises when it cannot run at an input size: PyTorch's shape errors, timm's assertions.
SHAPE_ERRORS = (RuntimeError, AssertionError, ValueError, IndexError)
MAX_SEARCH_SIZE = 8192  # the minimum-size search gives up above this height/width


class StageShape(NamedTuple):
    """What one stage gives: ``channels`` of its output map, and its spatial ``reduction`` (stride).

    A stage fed an ``(N, 3, H, W)`` image gives an ``(N, channels, ~H / reduction, ~W / reduction)`` map;
    ``reduction`` is a power of two, the ratio of input to output width rounded on a log scale. A tuple,
    so ``channels, reduction = shape`` works.

    Example:
        >>> StageShape(64, 4)
        StageShape(channels=64, reduction=4)
        >>> channels, reduction = StageShape(64, 4)
    """

    channels: int
    reduction: int


class ShapeProbe(StageRunner):
    """The shape side of a backbone: its stages' shapes, whether it runs at a size, its smallest size.

    A part of :class:`~percept.backbones.base.Backbone`; shapes are traced once and kept, and each
    minimum size found is kept per deepest stage.
    """

    input_size: tuple[int, int] | None

    def _init_probe(self) -> None:
        """Nothing traced yet (called once by the backbone's ``__init__``, after the stages are set up)."""
        self._shapes: list[tuple[int, int]] | None = None
        self._min_size_cache: dict[int, int] = {}

    def stage_shapes(self) -> list[StageShape]:
        """:class:`StageShape` ``(channels, reduction)`` of every stage output, shallow to deep.

        Traced once at ``input_size`` (else 224); see the module docstring.

        Example:
            >>> create_backbone("alexnet", weights=None).stage_shapes()[0]  # doctest: +SKIP
            StageShape(channels=64, reduction=4)
        """
        return [StageShape(int(c), int(r)) for c, r in self._trace_shapes()]

    def _trace_shapes(self) -> list[tuple[int, int]]:
        """``(channels, reduction)`` of every stage output, traced once at ``input_size`` (else 224).
        The hook behind :meth:`stage_shapes`: a backbone that knows its shapes without a run overrides it."""
        if self._shapes is None:
            self._shapes = self._trace(max(self.input_size) if self.input_size else 224)
        return self._shapes

    def _trace(self, size: int) -> list[tuple[int, int]]:
        """Run every stage on a zero ``size x size`` image and read each output's channels and reduction."""
        net, device = self._network(trace=True)
        last = len(self._stages) - 1
        was_training = [m.training for _, m in self._stages]
        self.model.eval()
        try:
            with torch.no_grad():
                outputs = self._run(net, torch.zeros(1, 3, size, size, device=device), last, set(range(last + 1)))
        finally:
            for (_, m), t in zip(self._stages, was_training, strict=True):
                m.train(t)
        out: list[tuple[int, int]] = []
        for i in range(last + 1):
            y = self._tap_map(i, outputs[i], (size, size))
            reduction = 2 ** round(math.log2(size / max(y.shape[-1], 1)))
            out.append((int(y.shape[1]), int(reduction)))
        return out

    def runs_at(self, size: int | tuple[int, int], last: int | None = None) -> bool:
        """Whether the network runs on a ``size`` input up to stage ``last`` (default: every stage) and
        every stage gives at least one pixel; tried without weights where possible (meta device).

        Example:
            >>> create_backbone("alexnet", weights=None).runs_at(8)  # doctest: +SKIP
            False
        """
        height, width = (size, size) if isinstance(size, int) else size
        last = len(self._stages) - 1 if last is None else last
        net, device = self._network(trace=True)
        try:
            with torch.no_grad():
                x = torch.zeros(1, 3, height, width, device=device)
                outputs = self._run(net, x, last, set(range(last + 1)))
                for i, y in outputs.items():
                    y = self._tap_map(i, y, (height, width))
                    if y.dim() < 4 or min(y.shape[-2:]) < 1:
                        return False
            return True
        except SHAPE_ERRORS:
            return False

    def _min_size_to(self, last: int) -> int:
        """The smallest height/width at which stages up to ``last`` each give a pixel (searched once)."""
        if last not in self._min_size_cache:
            self._min_size_cache[last] = self._search_min_size(last)
        return self._min_size_cache[last]

    def _search_min_size(self, last: int) -> int:
        """Double the size until the network runs up to ``last``, then bisect down to the smallest that does."""
        low, high = 1, 16
        while not self.runs_at(high, last):
            low, high = high, high * 2
            if high > MAX_SEARCH_SIZE:
                raise RuntimeError(
                    f"backbone {self.name!r}: found no input size up to {MAX_SEARCH_SIZE} that reaches stage {last}"
                )
        while low < high:
            mid = (low + high) // 2
            if self.runs_at(mid, last):
                high = mid
            else:
                low = mid + 1
        return high


def stage_shapes(backbone: ShapeProbe) -> list[StageShape]:
    """:class:`StageShape` ``(channels, reduction)`` of every stage output of ``backbone``, shallow to deep.

    The typed, public form of what a backbone traces at construction (its taps' channels and reduction
    come from it): one entry per stage (per module path, see ``backbone.module_paths``), so a tap's
    shape is ``stage_shapes(backbone)[backbone.tap_info(tap).index]``.

    Args:
        backbone: a :class:`~percept.backbones.base.Backbone` (built, e.g. by ``create_backbone``).

    Returns:
        One :class:`StageShape` per stage; traced once per backbone, then read from its cache.

    Raises:
        InputError: ``backbone`` is not a percept Backbone (a name, a plain ``nn.Module``, a pipeline).

    Example:
        >>> from percept import create_backbone
        >>> shapes = stage_shapes(create_backbone("alexnet", weights=None))  # doctest: +SKIP
        >>> shapes[0], len(shapes)  # doctest: +SKIP
        (StageShape(channels=64, reduction=4), 13)
    """
    if not isinstance(backbone, ShapeProbe):
        hint = ""
        if isinstance(backbone, str):
            hint = f": build it first, create_backbone({backbone!r})"
        elif isinstance(getattr(backbone, "backbone", None), ShapeProbe):
            hint = ": pass its .backbone"
        raise InputError(f"stage_shapes needs a percept Backbone, got {type(backbone).__name__}{hint}")
    return backbone.stage_shapes()
