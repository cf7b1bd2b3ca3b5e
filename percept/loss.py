"""``PerceptualLoss``: a frozen network as a differentiable loss, for training loops."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from percept.ops import fused_setting
from percept.pipeline import Pipeline
from percept.pipeline_keywords import pipeline_from_keywords
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
        weights: backbone weights: ``"imagenet"``, a local file, or random weights (with a warning):
            ``"random:SEED"`` (the same seed, the same network) or ``None`` (a seed drawn from torch's
            generator; :attr:`signature` states it).
        input_range: range of your images, ``(0, 1)`` (default) or ``(-1, 1)``.
        check_inputs: validate every batch (shape, dtype, range, NaN/Inf, size); one reduction
            over the input, which you may turn off once a training loop is known to be right. On a GPU
            the values are looked at in the first steps and then every 50th (see
            :mod:`percept.validation`), so the check never makes a step wait for the device.
        fast: trade bit-exactness for speed in training (not for metrics or reported numbers): the
            network and the images in channels-last memory format (faster convolutions), and on CUDA
            the network under autocast to bfloat16 (float16 where bfloat16 is not supported) while the
            distances accumulate in float32. Without autocast (on the CPU) the loss differs from the
            exact path by rounding only (about 1e-7 relative; tested below 1e-5), and the input's
            gradient where rounding flips a ReLU or a max-pool's pick (about 1e-3 of its norm); under
            autocast, by half-precision features (not measured here: percept's tests allow 5e-2).
        layer_weights: one weight per tap (a sequence, or a mapping from tap name to weight); the loss
            is ``sum_l w_l d_l``. Weights given in the spec (``conv3=0.5``) do the same.
        **kwargs: ``readout=`` and ``distance=`` (names or objects overriding the spec's), options of a
            preset (``lin_weights=`` of LPIPS, ``selection=`` of ``map-selection``), or else of the
            backbone (``resize=True``: every input resized to the size the weights were trained at, which
            networks that run at one size only, such as ``maxvit_t``, need); see
            :func:`percept.build_pipeline`.

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
        fast: bool = False,
        **kwargs,
    ) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        fused_setting()  # a bad $PERCEPT_FUSED fails here, once, not on every call
        common = dict(weights=weights, input_range=input_range, check_inputs=check_inputs, layer_weights=layer_weights)
        self.pipeline: Pipeline = pipeline_from_keywords(spec, {**common, **kwargs})
        self.fast = bool(fast)
        if self.fast:
            self.pipeline.to(memory_format=torch.channels_last)

    @property
    def spec(self) -> str:
        return self.pipeline.spec

    @property
    def signature(self) -> str:
        """What produced this loss's numbers, in one line (:func:`percept.signature.signature`): spec or preset and
        version, input range, resize, the weights' checksum (and seed, if random) and percept's version."""
        from percept.signature import signature

        return signature(self)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss between ``input`` (the prediction) and ``target``; see the class docstring for shapes."""
        if not self.fast:
            return reduce(self.pipeline(input, target), self.reduction)
        input, target = (_channels_last(t) for t in (input, target))
        with _fast_autocast(input):
            values = self.pipeline(input, target)
        return reduce(values.float(), self.reduction)

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}, reduction={self.reduction!r}" + (", fast=True" if self.fast else "")


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    """``t`` in channels-last format if it is a 4-d tensor (anything else goes on, for the input checks to name)."""
    return t.contiguous(memory_format=torch.channels_last) if isinstance(t, torch.Tensor) and t.dim() == 4 else t


def _fast_autocast(x: torch.Tensor):
    """bfloat16 (else float16) autocast for a CUDA input, unless autocast is already on; nothing elsewhere."""
    if not isinstance(x, torch.Tensor) or x.device.type != "cuda" or torch.is_autocast_enabled("cuda"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)
