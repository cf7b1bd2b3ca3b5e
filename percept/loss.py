"""``PerceptualLoss``: a frozen network as a differentiable loss, for training loops."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from percept.ops import fused_setting
from percept.pipeline import Pipeline, build_pipeline
from percept.spec import Spec

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


class PerceptualLoss(nn.Module):
    """A perceptual loss: distance between the features a frozen network sees in two images.

    Args:
        spec: what to compare (``"vgg16:conv3"``, ``"vgg16:conv1,conv2,conv3=0.5/unit/l2"``,
            ``"lpips-vgg"``); see :func:`percept.parse_spec`.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (one value per sample).
        weights: backbone weights: ``"imagenet"``, a local file, or ``None`` (random, warns).
        input_range: range of your images, ``(0, 1)`` (default) or ``(-1, 1)``.
        check_inputs: validate every batch (shape, dtype, range, NaN/Inf, size); one reduction
            over the input, which you may turn off once a training loop is known to be right.
        **kwargs: ``readout=``, ``distance=``, ``layer_weights=`` overrides, preset options.

    Shapes:
        ``input, target``: ``(N, C, H, W)``, C = 1 or 3, float, values in ``input_range``.
        Output: a scalar, or ``(N,)`` with ``reduction="none"``.

    The network is frozen (eval mode, no gradients for its weights), stays so under ``.train()``,
    and is left out of ``state_dict``. Gradients flow to ``input`` (and to ``target`` if it requires
    grad); a target that needs no gradient is run without a graph.

    Example:
        >>> loss_fn = PerceptualLoss("vgg16:conv3")  # doctest: +SKIP
        >>> loss = loss_fn(model(low_res), high_res)  # doctest: +SKIP
        >>> loss.backward()  # doctest: +SKIP
    """

    def __init__(
        self,
        spec: str | Spec = "vgg16:conv3",
        *,
        reduction: str = "mean",
        weights="imagenet",
        input_range: tuple[float, float] = (0.0, 1.0),
        check_inputs: bool = True,
        layer_weights: Sequence[float] | Mapping[str, float] | None = None,
        **kwargs,
    ) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        fused_setting()  # a bad $PERCEPT_FUSED fails here, once, not on every call
        self.pipeline: Pipeline = build_pipeline(
            spec,
            weights=weights,
            input_range=input_range,
            check_inputs=check_inputs,
            layer_weights=layer_weights,
            **kwargs,
        )

    @property
    def spec(self) -> str:
        return self.pipeline.spec

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss between ``input`` (the prediction) and ``target``; see the class docstring for shapes."""
        return reduce(self.pipeline(input, target), self.reduction)

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}, reduction={self.reduction!r}"
