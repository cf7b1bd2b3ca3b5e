"""What :class:`~percept.PerceptualMetric` needs from ``torchmetrics.Metric`` beyond its public API, in one place.

:class:`MetricBase` is a ``torchmetrics.Metric`` with three promises torchmetrics does not make, each kept with as
little of torchmetrics' inside as can be, and each tested against the oldest and the newest torchmetrics percept
supports (``tests/test_metric_compat.py``, whose docstring says how to run it against another release; CI runs it
against torchmetrics 1.0.0 too, in ``.ci/run``):

1. **A compute group of its own.** In a ``MetricCollection``, torchmetrics puts metrics whose states look the same
   after the first update into one compute group, updates only the first and shows its value for all. Two
   perceptual metrics of other networks or taps would then report one value (a first batch of identical pairs gives
   zeros in both). torchmetrics offers no switch for this in the metric (only ``compute_groups=False`` on the
   collection, which users would have to remember), but it never merges metrics whose states have other *names*.
   So every instance also holds one state named for it (``compute_group_<n>``, a scalar count of nothing, reduced
   with ``max``): no two metrics built apart are merged, while a metric and its copies (``clone()``, ``deepcopy``:
   the same network) may be, correctly. That state is left out of :attr:`MetricBase.metric_state`, of the
   ``state_dict`` and of what :meth:`MetricBase.merge_state` expects; nothing else sees it. (Public API only:
   ``add_state``, ``state_dict``, ``merge_state``, ``metric_state``.)
2. **States that keep their dtype** (:attr:`MetricBase.keep_dtype`): a network cast to bfloat16 (Lightning's
   ``"bf16-true"`` calls ``.to(dtype)`` on the module that holds the metric) or ``set_dtype`` casts every
   torchmetrics state, a float64 running sum and an integer count included. States named in ``keep_dtype`` are
   moved to the new device but keep their dtype. A cast reaches a metric inside another module only through
   ``nn.Module._apply``, so this is the one override of a private method left: it passes the names through the
   ``exclude_state`` argument torchmetrics' ``Metric._apply`` has for this purpose ("state variables ... that then
   need to be handled by the metric class itself") and moves them itself.
3. **Results that keep one dimension** (:attr:`MetricBase.keep_result_1d`): torchmetrics squeezes a one-element
   result of ``compute`` (and so of ``forward``) to a 0-d tensor. With ``keep_result_1d`` set, a 0-d result is
   given back as shape ``(1,)``. torchmetrics wraps ``compute`` once built and once unpickled; this module wraps
   what it made, in ``__init__`` and ``__setstate__`` (no private name involved).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torchmetrics import Metric

GROUP_PREFIX = "compute_group_"
_instances = itertools.count()


def moved_keeping_dtype(fn: Callable[[torch.Tensor], torch.Tensor], value: Any) -> Any:
    """``fn(value)`` if that keeps the dtype; else ``value`` moved, uncast, to the device ``fn`` moves it to.

    Args:
        fn: what ``nn.Module._apply`` applies to every tensor (``.to(...)``, ``.cuda()``, a dtype cast).
        value: a tensor, or a list of tensors (a list state), handled one by one.

    Returns:
        The tensor (or list) on ``fn``'s device, in its own dtype.

    Example:
        >>> total = torch.tensor(3, dtype=torch.long)
        >>> moved_keeping_dtype(lambda t: t.to(torch.bfloat16), total)
        tensor(3)
        >>> moved_keeping_dtype(lambda t: t.to("meta"), total).device
        device(type='meta')
    """
    if isinstance(value, list):
        return [moved_keeping_dtype(fn, v) for v in value]
    moved = fn(value)
    return moved if moved.dtype == value.dtype else value.to(moved.device)


class MetricBase(Metric):
    """A ``torchmetrics.Metric`` in a compute group of its own, with dtype-keeping states and 1-d results.

    Subclasses add their states with ``add_state`` as usual, then may name the states that keep their dtype
    (``self.keep_dtype = ("sum_scores", "total")``) and ask for 1-d results (``self.keep_result_1d = True``). The
    module docstring says why each exists and which part of torchmetrics it relies on.

    Args:
        **kwargs: the options of ``torchmetrics.Metric`` (``sync_on_compute=``, ``dist_sync_on_step=``, ...).

    Example:
        >>> from torchmetrics import MetricCollection
        >>> class Count(MetricBase):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.add_state("n", default=torch.tensor(0), dist_reduce_fx="sum")
        ...     def update(self, x):
        ...         self.n = self.n + len(x)
        ...     def compute(self):
        ...         return self.n
        >>> collection = MetricCollection({"a": Count(), "b": Count()})
        >>> collection.update(torch.zeros(2))
        >>> collection.compute_groups  # equal states, but never merged
        {0: ['a'], 1: ['b']}
        >>> sorted(collection["a"].metric_state)
        ['n']
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state_names: list[str] = []
        self.keep_dtype: Sequence[str] = ()
        self.keep_result_1d = False
        self.compute_group = f"{GROUP_PREFIX}{next(_instances)}"
        super().add_state(self.compute_group, default=torch.tensor(0), dist_reduce_fx="max", persistent=False)
        self._keep_result_shape()

    def add_state(
        self,
        name: str,
        default: list | torch.Tensor,
        dist_reduce_fx: str | Callable | None = None,
        persistent: bool = False,
    ) -> None:
        """``torchmetrics.Metric.add_state``, and the name recorded in :attr:`state_names` (see ``metric_state``)."""
        super().add_state(name, default, dist_reduce_fx=dist_reduce_fx, persistent=persistent)
        self.state_names.append(name)

    @property
    def metric_state(self) -> dict[str, list[torch.Tensor] | torch.Tensor]:
        """The states added with ``add_state``, by name (never the compute-group state)."""
        return {name: getattr(self, name) for name in self.state_names}

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        """``torchmetrics.Metric.merge_state`` (torchmetrics 1.6 and later), from a ``metric_state`` or a metric."""
        if isinstance(incoming_state, type(self)):
            incoming_state = incoming_state.metric_state
        if isinstance(incoming_state, dict):
            incoming_state = {self.compute_group: getattr(self, self.compute_group), **incoming_state}
        super().merge_state(incoming_state)

    def state_dict(  # type: ignore[override]  # torchmetrics' signature
        self, destination: dict[str, Any] | None = None, prefix: str = "", keep_vars: bool = False
    ) -> dict[str, Any]:
        """``torchmetrics.Metric.state_dict``: the states made persistent with ``persistent(True)``, never the
        compute-group state."""
        out = super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        out.pop(prefix + self.compute_group, None)
        return out

    def _apply(self, fn: Callable, exclude_state: Iterable[str] = ()) -> MetricBase:
        # See the module docstring, item 2: the one override of a private method.
        keep = tuple(getattr(self, "keep_dtype", ()))
        this = super()._apply(fn, exclude_state=(*exclude_state, *keep))
        for name in keep:
            setattr(this, name, moved_keeping_dtype(fn, getattr(this, name)))
        return this  # type: ignore[return-value]  # Module._apply returns self

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._keep_result_shape()

    def _keep_result_shape(self) -> None:
        """Wrap the ``compute`` torchmetrics made (it squeezes one-element results) to give ``(1,)`` back when
        :attr:`keep_result_1d` is set."""
        wrapped = self.compute

        @functools.wraps(wrapped)
        def compute(*args: Any, **kwargs: Any) -> Any:
            value = wrapped(*args, **kwargs)
            if self.keep_result_1d and isinstance(value, torch.Tensor) and value.dim() == 0:
                value = value.reshape(1)
            return value

        self.compute = compute  # type: ignore[method-assign]
