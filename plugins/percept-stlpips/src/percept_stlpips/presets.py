"""The ST-LPIPS metrics: shift-tolerant backbone, unit-normalised taps, the linear heads, squared L2.

Computed as ``stlpips_pytorch.stlpips.LPIPS(net=..., variant="shift_tolerant")`` computes it: each
canonical tap is unit-normalised per pixel, the squared difference is weighted per channel by the
head, averaged over space, and summed over the five taps.
"""

from __future__ import annotations

import os

from percept.plugin import ChannelWeightedReadout, Pipeline, create_distance, load_lpips_heads
from percept_stlpips.networks import NETS, create_stlpips_backbone, stlpips_weight_file


def create_stlpips(
    net: str = "alex",
    *,
    weights="stlpips",
    lin_weights: str | os.PathLike | None = None,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> Pipeline:
    """ST-LPIPS over the shift-tolerant AlexNet (``"alex"``) or VGG16 (``"vgg"``).

    Args:
        net: ``"alex"`` or ``"vgg"``.
        weights: backbone weights: ``"stlpips"`` (default, from stlpips-pytorch; ``"imagenet"`` means
            the same), a path, or ``None`` for random.
        lin_weights: path to linear heads (``lin{i}.model.1.weight``); default: the same ST-LPIPS file.
        input_range: the range of the images you pass, ``(0, 1)`` (default) or ``(-1, 1)``.

    Returns:
        A :class:`~percept.plugin.Pipeline`: ``(N, 3, H, W)`` image pairs to ``(N,)`` distances.

    Example:
        >>> metric = create_stlpips("alex")  # doctest: +SKIP
        >>> metric(x, torch.roll(x, 1, dims=-1))  # small for a one-pixel shift  # doctest: +SKIP
    """
    backbone = create_stlpips_backbone(net, weights, input_range=input_range)
    infos = backbone.resolve_taps(None)
    heads = load_lpips_heads(lin_weights or stlpips_weight_file(net), [i.channels for i in infos])
    readouts = [ChannelWeightedReadout(i.channels, h, normalize=True) for i, h in zip(infos, heads, strict=True)]
    return Pipeline(backbone, [i.name for i in infos], readouts, create_distance("l2"), spec=f"stlpips-{net}")


__all__ = ["NETS", "create_stlpips"]
