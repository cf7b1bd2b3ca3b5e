"""``PerceptualMetric``: a perceptual distance as a ``torchmetrics.Metric``, correct under DDP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torchmetrics.utilities.data import dim_zero_cat

from percept.loss import check_reduction
from percept.metric_compat import MetricBase
from percept.pipeline import Pipeline
from percept.pipeline_keywords import pipeline_from_keywords, route_keywords
from percept.spec import Spec

# The keywords torchmetrics.Metric.__init__ reads from its **kwargs (it declares no named parameters);
# PerceptualMetric passes these to it and every other keyword to the preset or backbone.
METRIC_OPTIONS = frozenset(
    {
        "compute_on_cpu",
        "dist_sync_on_step",
        "process_group",
        "dist_sync_fn",
        "distributed_available_fn",
        "sync_on_compute",
        "compute_with_cache",
    }
)
ROUTING = (
    f"PerceptualMetric passes {', '.join(sorted(METRIC_OPTIONS))} to torchmetrics.Metric and every other keyword "
    "to the spec's preset or backbone"
)


def _empty_batch(preds: Any, target: Any) -> bool:
    """Both are empty 4-D float batches of one shape (``update`` leaves the state as it was)."""
    return (
        isinstance(preds, torch.Tensor)
        and isinstance(target, torch.Tensor)
        and preds.dim() == 4
        and preds.shape == target.shape
        and preds.shape[0] == 0
        and preds.is_floating_point()
        and target.is_floating_point()
    )


class PerceptualMetric(MetricBase):
    """Mean (or sum, or per-sample) perceptual distance over everything seen, for evaluation loops.

    Args:
        spec: what to compare, e.g. ``"lpips-alex"`` (default), ``"lpips-vgg"``, ``"vgg16:conv3"``.
        reduction: ``"mean"`` (default) and ``"sum"`` keep a running sum and count (reduced with
            ``sum`` across processes); ``"none"`` keeps every per-sample value (a list state, gathered
            across processes) and returns them all.
        weights, input_range, check_inputs, layer_weights: as for :class:`percept.PerceptualLoss`.
        pipeline_kwargs: options of the preset or backbone as a mapping (the same as passing them as
            keywords).
        **kwargs: the options of ``torchmetrics.Metric`` (``sync_on_compute``, ``dist_sync_on_step``,
            ``process_group``, ``dist_sync_fn``, ``distributed_available_fn``, ``compute_on_cpu``,
            ``compute_with_cache``) go to torchmetrics; every other keyword, as in
            :class:`percept.PerceptualLoss`, to the pipeline: ``readout=``, ``distance=``, preset
            options (``selection=`` of ``map-selection``, ``lin_weights=`` of LPIPS), backbone options
            (``resize=True``).

    Shapes:
        ``update(preds, target)``: ``(N, C, H, W)``, C = 1 or 3, values in ``input_range``.
        ``compute()``: a scalar, or ``(total,)`` with ``reduction="none"`` (``(1,)`` after one sample).
        ``forward(preds, target)``: the batch's value: a scalar, or ``(N,)`` with ``reduction="none"``.

    An ``update`` that raises (bad input) leaves the state as it was. In a torchmetrics
    ``MetricCollection`` every percept metric is a compute group of its own: two of them are never
    merged, even when their states happen to be equal. (torchmetrics merges metrics whose states are
    equal after the first update, so two metrics of other networks that both saw identical pairs first
    would report one value; each metric also holds a state named for it, so no two have the same states.
    That state is left out of ``metric_state`` and the ``state_dict``; see :mod:`percept.metric_compat`.)
    A cast of the network (``set_dtype``, or ``.to(torch.bfloat16)`` as Lightning's ``"bf16-true"`` does)
    leaves the running sum in float64, the count an integer and the per-sample scores as they were.

    Example:
        >>> metric = PerceptualMetric("lpips-alex")  # doctest: +SKIP
        >>> metric.update(preds, target)  # doctest: +SKIP
        >>> metric.compute()  # doctest: +SKIP
        tensor(0.2154)
        >>> PerceptualMetric("map-selection", selection="selection.json", sync_on_compute=False)  # doctest: +SKIP
    """

    is_differentiable = True
    higher_is_better = False
    full_state_update = False
    plot_lower_bound = 0.0
    # The states add_state creates (for type checkers; torchmetrics sets them as attributes).
    scores: list[torch.Tensor]  # reduction="none"; a tensor after a DDP sync
    sum_scores: torch.Tensor
    total: torch.Tensor

    def __init__(
        self,
        spec: str | Spec = "lpips-alex",
        *,
        reduction: str = "mean",
        weights="imagenet",
        input_range: tuple[float, float] = (0.0, 1.0),
        check_inputs: bool = True,
        layer_weights: Sequence[float] | Mapping[str, float] | None = None,
        pipeline_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        metric_kwargs, options = route_keywords(kwargs, METRIC_OPTIONS, pipeline_kwargs)
        super().__init__(**metric_kwargs)
        self.reduction = check_reduction(reduction)
        common = dict(weights=weights, input_range=input_range, check_inputs=check_inputs, layer_weights=layer_weights)
        self.pipeline: Pipeline = pipeline_from_keywords(spec, {**common, **options}, routing=ROUTING)
        if reduction == "none":
            self.add_state("scores", default=[], dist_reduce_fx="cat")
            self.keep_dtype = ("scores",)
            self.keep_result_1d = True  # (total,) from compute and (N,) from forward, a batch of one included
        else:
            self.add_state("sum_scores", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
            self.keep_dtype = ("sum_scores", "total")

    @property
    def spec(self) -> str:
        return self.pipeline.spec

    @property
    def signature(self) -> str:
        """What produced this metric's numbers, in one line (:func:`percept.signature.signature`): spec or preset and
        version, input range, resize, the weights' checksum (and seed, if random) and percept's version."""
        from percept.signature import signature

        return signature(self)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Score a batch and add it to the state (the state changes only if scoring succeeded).

        An empty batch (``(0, C, H, W)`` for both, same shape, floating point) is a no-op, as for torchmetrics'
        own metrics: a last, empty batch of a loader or a filtered-out batch leaves the state as it was. An
        empty batch of mismatched shapes is still refused.

        Example:
            >>> metric = PerceptualMetric("pixel:pixel/raw/l2")  # doctest: +SKIP
            >>> metric.update(torch.rand(0, 3, 16, 16), torch.rand(0, 3, 16, 16))  # nothing added  # doctest: +SKIP
        """
        if _empty_batch(preds, target):
            return
        scores = self.pipeline(preds, target)
        if self.reduction == "none":
            self.scores.append(scores.detach() if not scores.requires_grad else scores)
        else:
            # Out of place: after a reset() under torch.inference_mode (Lightning's trainer.validate) the
            # states are inference tensors, which in-place updates outside inference mode cannot touch.
            self.sum_scores = self.sum_scores + scores.sum().to(self.sum_scores.dtype)
            self.total = self.total + scores.numel()

    def compute(self) -> torch.Tensor:
        """The mean or sum of every score seen (float32), or all of them with ``reduction="none"``."""
        if self.reduction == "none":
            # After a DDP sync the state is the gathered tensor, not a list.
            if isinstance(self.scores, list) and not self.scores:
                return torch.zeros(0, device=self.device)
            return dim_zero_cat(self.scores)
        if self.reduction == "sum":
            return self.sum_scores.float()
        return (self.sum_scores / self.total.clamp(min=1)).float() if self.total > 0 else self._empty()

    def _empty(self) -> torch.Tensor:
        return torch.tensor(float("nan"), device=self.sum_scores.device)
