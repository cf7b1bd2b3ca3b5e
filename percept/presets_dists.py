"""The ``dists`` preset: DISTS (Ding, Ma, Wang & Simoncelli 2020), exactly as ``DISTS_pytorch`` computes it.

VGG16 with every max-pool replaced by Hanning-window L2 pooling (``vgg16_l2pool``); taps: the image
itself (``pixel``) and ``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3`` (``conv1``..``conv5``); on each
tap, the structure and texture terms of :mod:`percept.distances.dists` weighted by the published
``alpha``/``beta``. The weights are read from the file torchmetrics ships
(``torchmetrics/functional/image/dists_models/weights.pt``, the same file as ``DISTS_pytorch``'s
``weights.pt``; no torchmetrics import needed) or from ``alpha_beta=PATH``.

Input handling: images are used at the size they come, as both reference implementations do when
called on tensors (``DISTS_pytorch``'s ``prepare_image`` resizes to 256 only with ``resize=True``,
and torchmetrics never resizes). Resize beforehand to compare with scores published at 256.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import torch

from percept.backbones.factory import create_backbone
from percept.backbones.weights import load_state_dict_file
from percept.distances.dists import DISTSDistance, DISTSWeights
from percept.errors import WeightsError
from percept.hookspecs import hookimpl
from percept.pipeline import Pipeline

DISTS_TAPS = ("pixel", "conv1", "conv2", "conv3", "conv4", "conv5")


def torchmetrics_dists_file() -> Path:
    """Path of the DISTS alpha/beta file torchmetrics ships.

    Raises:
        WeightsError: torchmetrics is not installed, or ships no such file.

    Example:
        >>> torchmetrics_dists_file().name  # doctest: +SKIP
        'weights.pt'
    """
    spec = importlib.util.find_spec("torchmetrics")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "DISTS' alpha/beta come from the file torchmetrics ships, and torchmetrics is not installed: "
            "`pip install torchmetrics`, or pass alpha_beta='/path/to/weights.pt' (DISTS_pytorch's weights.pt)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "functional" / "image" / "dists_models" / "weights.pt"
    if not path.is_file():
        raise WeightsError(f"the installed torchmetrics has no DISTS weight file '{path}'; pass alpha_beta=PATH")
    return path


def load_dists_weights(path: str | os.PathLike, channels: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Read DISTS' ``alpha``/``beta`` (``(1, sum C, 1, 1)`` each), normalise them by their total and split per tap.

    Args:
        path: a file holding ``{"alpha": ..., "beta": ...}``.
        channels: the channels of each tap, in order (DISTS: ``[3, 64, 128, 256, 512, 512]``).

    Returns:
        One ``(alpha, beta)`` pair of ``(C,)`` tensors per tap; all of them together sum to 1.

    Example:
        >>> pairs = load_dists_weights(torchmetrics_dists_file(), [3, 64, 128, 256, 512, 512])  # doctest: +SKIP
        >>> [a.numel() for a, _ in pairs]  # doctest: +SKIP
        [3, 64, 128, 256, 512, 512]
    """
    state = load_state_dict_file(path)
    missing = [k for k in ("alpha", "beta") if k not in state]
    if missing:
        raise WeightsError(f"DISTS weight file '{path}' has no {missing}; keys found: {sorted(state)[:8]}")
    alpha, beta = state["alpha"].float(), state["beta"].float()
    total = sum(channels)
    if alpha.numel() != total or beta.numel() != total:
        raise WeightsError(
            f"DISTS weight file '{path}' holds {alpha.numel()} alpha and {beta.numel()} beta values; the taps have "
            f"{total} channels ({channels})"
        )
    alpha, beta = alpha.reshape(1, total, 1, 1), beta.reshape(1, total, 1, 1)
    # DISTS_pytorch's arithmetic: divide by the sum of both, then split along channels.
    w_sum = alpha.sum() + beta.sum()
    alphas = torch.split(alpha / w_sum, channels, dim=1)
    betas = torch.split(beta / w_sum, channels, dim=1)
    return [(a.reshape(-1), b.reshape(-1)) for a, b in zip(alphas, betas, strict=True)]


def create_dists(
    *,
    weights="imagenet",
    alpha_beta: str | os.PathLike | None = None,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> Pipeline:
    """DISTS as a :class:`~percept.pipeline.Pipeline`: ``(N, C, H, W)`` image pairs in, ``(N,)`` scores out.

    Args:
        weights: VGG16 weights (``"imagenet"``: torchvision's ``IMAGENET1K_V1``, as DISTS uses; a path;
            or ``None`` for random).
        alpha_beta: path to DISTS' ``alpha``/``beta`` file; default: torchmetrics' copy.
        input_range: the range of the images passed, ``(0, 1)`` (DISTS' own) or ``(-1, 1)``.

    Returns:
        The pipeline; scores lie in ``[0, 1]`` for natural images, 0 for identical ones.

    Example:
        >>> dists = create_dists()  # doctest: +SKIP
        >>> dists(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)).shape  # doctest: +SKIP
        torch.Size([2])
    """
    if weights == "imagenet":
        weights = "imagenet1k_v1"  # DISTS was trained on this VGG16, whatever torchvision's default becomes
    backbone = create_backbone("vgg16_l2pool", weights=weights, input_range=input_range)
    infos = backbone.resolve_taps(list(DISTS_TAPS))
    pairs = load_dists_weights(alpha_beta or torchmetrics_dists_file(), [i.channels for i in infos])
    readouts = [DISTSWeights(a, b) for a, b in pairs]
    return Pipeline(backbone, list(DISTS_TAPS), readouts, DISTSDistance(), spec="dists")


def _create(**kwargs) -> Pipeline:
    return create_dists(**kwargs)


@hookimpl
def register_presets(register: Callable[..., None]) -> None:
    register("dists", _create, description="DISTS (Ding et al. 2020): VGG16 with L2 pooling, structure + texture")
