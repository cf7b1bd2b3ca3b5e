"""Everything DISTS (Ding, Ma, Wang & Simoncelli 2020), exactly as ``DISTS_pytorch`` computes it.

- the backbone ``vgg16_l2pool``: VGG16 with every max-pool replaced by Hanning-window L2 pooling
  (:class:`L2Pool`) and the image itself as a tap (``pixel``), normalised inside the network;
- the distance ``dists``: for the features ``a, b`` of one tap, per channel ``c`` with spatial means
  ``mu``, variances ``s^2`` and covariance ``s_ab`` (population statistics over ``H, W``)::

      texture   l_c = (2 mu_a mu_b + c1) / (mu_a^2 + mu_b^2 + c1)
      structure s_c = (2 s_ab + c2) / (s_a^2 + s_b^2 + c2)             c1 = c2 = 1e-6
      d = sum_c alpha_c (1 - l_c) + beta_c (1 - s_c)

  Summed over taps with DISTS' weights (``alpha``, ``beta`` normalised to sum 1 over every tap), this
  is ``1 - sum_{tap, c} (alpha_c l_c + beta_c s_c)``, the published score. Without weights (a spec
  such as ``vgg16_l2pool:conv3/raw/dists``) every channel weighs ``1 / (2 C)``, so each tap lies in
  ``[0, 2]``. ``DISTSDistance(terms=("texture",))`` (or ``("structure",)``) keeps one term. The
  kernels (statistics, L2 pooling, their backward passes) are in :mod:`percept.ops.dists`;
- the preset ``dists``: taps ``pixel`` and ``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3``
  (``conv1``..``conv5``) weighted by the published ``alpha``/``beta``, read from the file torchmetrics
  ships (``torchmetrics/functional/image/dists_models/weights.pt``, the same file as
  ``DISTS_pytorch``'s ``weights.pt``; no torchmetrics import needed) or from ``alpha_beta=PATH``; and
  the record of that file (:data:`DISTS_RECORD`).

Input handling: images are used at the size they come, as both reference implementations do when
called on tensors (``DISTS_pytorch``'s ``prepare_image`` resizes to 256 only with ``resize=True``,
and torchmetrics never resizes). Resize beforehand to compare with scores published at 256.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from percept.backbones.base import IMAGENET_MEAN, IMAGENET_STD, PretrainedCfg
from percept.backbones.factory import create_backbone
from percept.backbones.weights import WeightsArg, load_state_dict_file, package_file
from percept.builtin._torchvision import Family, Model, Stages, Taps, features_stages, register_families
from percept.builtin.vgg import vgg_taps
from percept.distances.base import Distance, check_global
from percept.errors import InputError, WeightsError
from percept.hookspecs import hookimpl
from percept.ops.dists import C1, C2, dists_terms, l2pool
from percept.ops.windows import hann_window_2d
from percept.pipeline import Pipeline
from percept.readouts.base import Readout

__all__ = ("C1", "C2", "DISTSDistance", "DISTSWeights", "L2Pool", "create_dists", "dists_terms", "load_dists_weights")

TERMS = ("texture", "structure")
DISTS_TAPS = ("pixel", "conv1", "conv2", "conv3", "conv4", "conv5")
DISTS_FILE = ("torchmetrics", "functional/image/dists_models/weights.pt")
DISTS_RECORD = PretrainedCfg(
    tag="v0.1",
    source="torchmetrics/functional/image/dists_models/weights.pt (a copy of DISTS_pytorch's weights.pt)",
    url="https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt",
    filename="weights.pt",
    license="MIT (DISTS, Ding et al. 2020); redistributed in torchmetrics (Apache-2.0)",
    task="alpha/beta: structure and texture weights per channel of the image and 5 VGG16 (L2-pooling) stages",
    data="KADID-10k (Ding 2020): mean opinion scores of distorted images",
    extra={"backbone": "vgg16_l2pool", "keys": "alpha, beta: (1, 1475, 1, 1) each", "package_file": DISTS_FILE},
    checksum="f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",  # DISTS_pytorch 0.1 weights.pt
)


# -- the backbone: VGG16 with L2 pooling -----------------------------------------------------------


class L2Pool(nn.Module):
    """Hanning-window L2 pooling (DISTS, Ding et al. 2020): ``sqrt(conv(x^2, g) + 1e-12)``, stride 2.

    ``g`` is :func:`~percept.ops.windows.hann_window_2d` (the outer product of ``hanning(filter_size)[1:-1]``
    with itself, normalised to sum 1); the arithmetic is that of ``DISTS_pytorch`` and torchmetrics, so
    results agree to the bit. The backward is written by hand (:func:`~percept.ops.dists.l2pool`): it
    keeps no squared copy of the input.

    Example:
        >>> L2Pool()(torch.ones(1, 2, 8, 8))[0, 0, 1, 1].item()  # a flat input passes unchanged
        1.0
    """

    filter: torch.Tensor  # buffer

    def __init__(self, filter_size: int = 5, stride: int = 2) -> None:
        super().__init__()
        self.register_buffer("filter", hann_window_2d(filter_size)[None, None], persistent=False)
        self.padding = (filter_size - 2) // 2
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.filter.to(x.dtype).expand(x.shape[1], 1, -1, -1)
        return l2pool(x, weight, self.stride, self.padding)


class Normalize(nn.Module):
    """``(x - mean) / std`` as a stage, for backbones that tap the image before normalising it.

    Example:
        >>> Normalize((0.5,) * 3, (0.5,) * 3)(torch.ones(1, 3, 2, 2)).unique().tolist()
        [1.0]
    """

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def l2pool_patch(model: Model) -> None:
    """DISTS' VGG16: every max-pool replaced by L2 pooling; the image tapped before normalisation."""
    for i, module in enumerate(model.features):
        if isinstance(module, nn.MaxPool2d):
            model.features[i] = L2Pool()
    model.pixel = nn.Identity()
    model.input_norm = Normalize()


def l2pool_stages(model: Model) -> Stages:
    """``pixel`` (the image), ``input_norm``, then VGG16's ``features``."""
    return [("pixel", model.pixel), ("input_norm", model.input_norm), *features_stages(model)]


def l2pool_taps(model: Model) -> Taps:
    """VGG's taps (L2 pooling ends a block as a max-pool does) and ``pixel``."""
    return [*vgg_taps(model, pools=(nn.MaxPool2d, L2Pool)), ("pixel", "pixel", False)]


FAMILIES = {
    "vgg16_l2pool": Family(
        l2pool_stages,
        l2pool_taps,
        ("avgpool", "classifier"),
        "VGG16 with Hanning-window L2 pooling and an image tap (DISTS, Ding 2020), ImageNet-1k",
        model="vgg16",
        patch=l2pool_patch,
        normalizes_itself=True,
    ),
}


# -- the distance ----------------------------------------------------------------------------------


class DISTSDistance(Distance):
    """DISTS' weighted structure and texture dissimilarity of one tap, per sample.

    Args:
        terms: which terms to use: ``("texture", "structure")`` (DISTS), or one of them.

    ``forward(a, b, alpha=None, beta=None)``: ``alpha``, ``beta`` are ``(C,)`` weights of the
    texture and structure terms (a :class:`DISTSWeights` readout supplies them); by default
    ``1 / (2 C)`` each (``1 / C`` for a single term). Returns ``(N,)``, ``>= 0``.

    Example:
        >>> x, y = torch.rand(2, 4, 8, 8), torch.rand(2, 4, 8, 8)
        >>> d = DISTSDistance()
        >>> d(x, x).abs().max().item() < 1e-6, bool((d(x, y) > 0).all())
        (True, True)
    """

    symmetric = True
    supports_spatial = False

    def __init__(self, terms: tuple[str, ...] = TERMS) -> None:
        super().__init__()
        terms = tuple(terms)
        if not terms or any(t not in TERMS for t in terms) or len(set(terms)) != len(terms):
            raise InputError(f"DISTS terms must be a non-empty subset of {TERMS}, got {terms!r}")
        self.terms = terms

    def forward(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        *,
        spatial: bool = False,
        alpha: torch.Tensor | None = None,
        beta: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_global("DISTS", a, b, spatial)
        texture, structure = dists_terms(a, b)
        channels = a.shape[1]
        default = 1.0 / (channels * len(self.terms))
        out: torch.Tensor | None = None
        for name, sim, w in (("texture", texture, alpha), ("structure", structure, beta)):
            if name not in self.terms:
                continue
            if w is not None and w.shape != (channels,):
                raise InputError(f"DISTS {name} weights must have shape ({channels},), got {tuple(w.shape)}")
            # 1 - sim >= 0 in exact arithmetic (Cauchy-Schwarz); the clamp removes rounding below zero.
            dissim = (1 - sim).clamp_min(0)
            term = (w * dissim).sum(1) if w is not None else dissim.sum(1) * default
            out = term if out is None else out + term
        assert out is not None  # terms is a non-empty subset of TERMS (checked in __init__)
        return out

    def extra_repr(self) -> str:
        return f"terms={self.terms}"


class DISTSWeights(Readout):
    """The features as they are, plus DISTS' per-channel ``alpha`` (texture) and ``beta`` (structure).

    Args:
        alpha, beta: ``(C,)`` weights (DISTS: the published values, divided by their total over all taps).

    Example:
        >>> r = DISTSWeights(torch.full((3,), 0.1), torch.full((3,), 0.2))
        >>> sorted(r.distance_kwargs())
        ['alpha', 'beta']
    """

    fusable = False
    alpha: torch.Tensor  # buffers
    beta: torch.Tensor

    def __init__(self, alpha: torch.Tensor, beta: torch.Tensor) -> None:
        super().__init__()
        alpha, beta = alpha.detach().reshape(-1).float(), beta.detach().reshape(-1).float()
        if alpha.shape != beta.shape:
            raise InputError(
                f"DISTS alpha and beta must have the same shape, got {tuple(alpha.shape)} and {tuple(beta.shape)}"
            )
        self.register_buffer("alpha", alpha.clone())
        self.register_buffer("beta", beta.clone())

    def distance_kwargs(self) -> dict[str, torch.Tensor]:
        return {"alpha": self.alpha, "beta": self.beta}

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features

    def extra_repr(self) -> str:
        return f"channels={self.alpha.numel()}"


# -- the preset ------------------------------------------------------------------------------------


def torchmetrics_dists_file() -> Path:
    """Path of the DISTS alpha/beta file torchmetrics ships.

    Raises:
        WeightsError: torchmetrics is not installed, or ships no such file.

    Example:
        >>> torchmetrics_dists_file().name  # doctest: +SKIP
        'weights.pt'
    """
    return package_file(*DISTS_FILE, hint="or pass alpha_beta='/path/to/weights.pt' (DISTS_pytorch's weights.pt)")


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
    weights: WeightsArg = "imagenet",
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


def _create_distance(terms: tuple[str, ...], **kwargs: Any) -> DISTSDistance:
    return DISTSDistance(terms)


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)


@hookimpl
def register_distances(register: Callable[..., None]) -> None:
    register(
        "dists",
        functools.partial(_create_distance, TERMS),
        description="DISTS structure + texture dissimilarity of channel statistics",
    )


@hookimpl
def register_presets(register: Callable[..., None]) -> None:
    register(
        "dists",
        create_dists,
        description="DISTS (Ding et al. 2020): VGG16 with L2 pooling, structure + texture",
        pretrained=(DISTS_RECORD,),
    )
