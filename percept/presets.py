"""Presets: the published metrics, exact.

``lpips-alex``, ``lpips-vgg``, ``lpips-squeeze``: LPIPS version 0.1 (Zhang et al. 2018). The
backbone's taps are unit-normalised per pixel, their squared difference is weighted per channel by
the linear heads, averaged over space and summed over taps. The heads are read from the files
torchmetrics ships (``torchmetrics/functional/image/lpips_models/*.pth``; no torchmetrics import
needed) or from ``lin_weights=PATH``. LPIPS' input scaling layer is applied in its own arithmetic
(``2x - 1``, then shift and scale), so float32 results match the reference to the last bit.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import torch

from percept.backbones.factory import create_backbone
from percept.backbones.weights import load_state_dict_file
from percept.distances.basic import L2
from percept.errors import WeightsError
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


def torchmetrics_lpips_file(net: str) -> Path:
    """Path of the LPIPS v0.1 linear-head file torchmetrics ships for ``net`` (alex, vgg, squeeze)."""
    spec = importlib.util.find_spec("torchmetrics")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"LPIPS linear heads for {net!r} come from the files torchmetrics ships, and torchmetrics is not "
            "installed: `pip install torchmetrics`, or pass lin_weights='/path/to/{net}.pth' (LPIPS v0.1 format)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "functional" / "image" / "lpips_models" / f"{net}.pth"
    if not path.is_file():
        raise WeightsError(f"the installed torchmetrics has no LPIPS head file '{path}'; pass lin_weights=PATH")
    return path


def load_lpips_heads(path: str | os.PathLike, channels: list[int]) -> list[torch.Tensor]:
    """Read LPIPS linear heads (``lin{i}.model.1.weight`` of shape ``(1, C, 1, 1)``) as ``(C,)`` tensors."""
    state = load_state_dict_file(path)
    heads = []
    for i, c in enumerate(channels):
        key = next((k for k in (f"lin{i}.model.1.weight", f"lins.{i}.model.1.weight") if k in state), None)
        if key is None:
            raise WeightsError(
                f"LPIPS head file '{path}' has no weights for layer {i} (expected key 'lin{i}.model.1.weight'); "
                f"keys found: {sorted(state)[:8]}"
            )
        w = state[key]
        if w.numel() != c:
            raise WeightsError(
                f"LPIPS head file '{path}': layer {i} has {w.numel()} weights, the network's tap has {c} channels; "
                "is it the head file of another network?"
            )
        heads.append(w.reshape(c).float())
    return heads


def create_lpips(
    net: str = "alex",
    *,
    weights="imagenet",
    lin_weights: str | os.PathLike | None = None,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> Pipeline:
    """LPIPS v0.1 over AlexNet, VGG16 or SqueezeNet 1.1, exactly as the ``lpips`` package computes it.

    Args:
        net: ``"alex"``, ``"vgg"`` or ``"squeeze"``.
        weights: backbone weights (``"imagenet"``, a path, or ``None`` for random).
        lin_weights: path to the linear heads (LPIPS v0.1 format); default: torchmetrics' copy.
        input_range: ``(0, 1)`` (default) or ``(-1, 1)`` as in the lpips package.

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


def _preset(net: str) -> Callable[..., Pipeline]:
    def factory(**kwargs) -> Pipeline:
        return create_lpips(net, **kwargs)

    return factory


@hookimpl
def register_presets(register: Callable[..., None]) -> None:
    register("lpips-alex", _preset("alex"), description="LPIPS v0.1, AlexNet (Zhang et al. 2018)")
    register("lpips-vgg", _preset("vgg"), description="LPIPS v0.1, VGG16 (Zhang et al. 2018)")
    register("lpips-squeeze", _preset("squeeze"), description="LPIPS v0.1, SqueezeNet 1.1 (Zhang et al. 2018)")
