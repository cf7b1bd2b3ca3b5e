"""Everything LPIPS (Zhang et al. 2018): the presets ``lpips-alex``, ``lpips-vgg``, ``lpips-squeeze``, exact.

LPIPS version 0.1: the backbone's taps are unit-normalised per pixel, their squared difference is
weighted per channel by the linear heads, averaged over space and summed over taps. The heads are
read from the files torchmetrics ships (``torchmetrics/functional/image/lpips_models/*.pth``; no
torchmetrics import needed) or from ``lin_weights=PATH``; :func:`lpips_record` describes each file
(source, licence, training data, SHA-256). LPIPS' input scaling layer is applied in its own
arithmetic (``2x - 1``, then shift and scale), so float32 results match the reference to the last bit.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from percept.backbones.base import PretrainedCfg
from percept.backbones.factory import create_backbone
from percept.backbones.weights import WeightsArg, load_lpips_heads, package_file
from percept.builtin.distances import L2
from percept.hookspecs import hookimpl
from percept.pipeline import Pipeline
from percept.readouts.base import ChannelWeightedReadout

# LPIPS' ScalingLayer: images in [-1, 1], (x - shift) / scale (= ImageNet mean/std on [0, 1]).
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
LPIPS_NETS = {
    "alex": ("alexnet", ["conv1", "conv2", "conv3", "conv4", "conv5"]),
    "vgg": ("vgg16", ["conv1", "conv2", "conv3", "conv4", "conv5"]),
    "squeeze": ("squeezenet1_1", ["relu1", "fire3", "fire5", "fire6", "fire7", "fire8", "fire9"]),
}
LPIPS_TITLES = {"alex": "AlexNet", "vgg": "VGG16", "squeeze": "SqueezeNet 1.1"}
LPIPS_SHA256 = {  # lpips 0.1.4's lpips/weights/v0.1/<net>.pth; torchmetrics ships the same bytes
    "alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    "vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    "squeeze": "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76",
}


def _package_path(net: str) -> tuple[str, str]:
    return "torchmetrics", f"functional/image/lpips_models/{net}.pth"


def lpips_record(net: str) -> PretrainedCfg:
    """The record of LPIPS v0.1's linear-head file for ``net`` (``"alex"``, ``"vgg"``, ``"squeeze"``).

    Example:
        >>> cfg = lpips_record("vgg")
        >>> cfg.filename, cfg.checksum[:8], cfg.extra["backbone"]
        ('vgg.pth', 'a78928a0', 'vgg16')
    """
    backbone, taps = LPIPS_NETS[net]
    return PretrainedCfg(
        tag="v0.1",
        source=f"torchmetrics/functional/image/lpips_models/{net}.pth (a copy of the lpips package's file)",
        url=f"https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{net}.pth",
        filename=f"{net}.pth",
        license="BSD-2-Clause (LPIPS, Zhang et al. 2018); redistributed in torchmetrics (Apache-2.0)",
        task="linear heads: one non-negative weight per channel of each tap, fit to human 2AFC judgements",
        data="BAPPS 2AFC (Zhang 2018): 64x64 patches, traditional and CNN-based distortions",
        mean=LPIPS_SHIFT,
        std=LPIPS_SCALE,
        input_range=(-1.0, 1.0),
        extra={
            "backbone": backbone,
            "taps": tuple(taps),
            "keys": "lin<i>.model.1.weight, (1, C, 1, 1) each",
            "package_file": _package_path(net),
        },
        checksum=LPIPS_SHA256[net],
    )


def torchmetrics_lpips_file(net: str) -> Path:
    """Path of the LPIPS v0.1 linear-head file torchmetrics ships for ``net`` (alex, vgg, squeeze).

    Raises:
        WeightsError: torchmetrics is not installed, or ships no such file.

    Example:
        >>> torchmetrics_lpips_file("alex").name  # doctest: +SKIP
        'alex.pth'
    """
    return package_file(*_package_path(net), hint=f"or pass lin_weights='/path/to/{net}.pth' (LPIPS v0.1 format)")


def create_lpips(
    net: str = "alex",
    *,
    weights: WeightsArg = "imagenet",
    lin_weights: str | os.PathLike | None = None,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> Pipeline:
    """LPIPS v0.1 over AlexNet, VGG16 or SqueezeNet 1.1, exactly as the ``lpips`` package computes it.

    Args:
        net: ``"alex"``, ``"vgg"`` or ``"squeeze"``.
        weights: backbone weights (``"imagenet"``, a path, or ``None`` for random).
        lin_weights: path to the linear heads (LPIPS v0.1 format); default: torchmetrics' copy.
        input_range: ``(0, 1)`` (default) or ``(-1, 1)`` as in the lpips package.

    Returns:
        The pipeline: ``(N, 3, H, W)`` image pairs in, ``(N,)`` LPIPS distances out.

    Example:
        >>> lpips = create_lpips("alex")  # doctest: +SKIP
        >>> lpips(x, y)  # (N,) LPIPS distances  # doctest: +SKIP
    """
    arch, taps = LPIPS_NETS[net]
    backbone = create_backbone(arch, weights=weights, input_range=input_range)
    backbone.set_normalization(LPIPS_SHIFT, LPIPS_SCALE, domain=(-1.0, 1.0))
    infos = backbone.resolve_taps(taps)
    heads = load_lpips_heads(lin_weights or torchmetrics_lpips_file(net), [i.channels for i in infos])
    readouts = [ChannelWeightedReadout(i.channels, h, normalize=True) for i, h in zip(infos, heads, strict=True)]
    return Pipeline(backbone, taps, readouts, L2(), spec=f"lpips-{net}")


@hookimpl
def register_presets(register: Callable[..., None]) -> None:
    for net, title in LPIPS_TITLES.items():
        register(
            f"lpips-{net}",
            functools.partial(create_lpips, net),
            description=f"LPIPS v0.1, {title} (Zhang et al. 2018)",
            pretrained=(lpips_record(net),),
        )


__all__: Sequence[str] = ("create_lpips", "load_lpips_heads", "lpips_record", "torchmetrics_lpips_file")
