"""Non-deep backbones through kornia: the image itself, Gaussian and Laplacian pyramids, Lab and YCbCr.

They make classic measures compose in the same grammar as deep ones: ``pixel/raw/mse`` is the mean
squared error, ``gaussian_pyramid:all/raw/mse`` a multi-scale MSE, ``laplacian_pyramid:all/raw/l1``
compares band-pass detail per octave, ``lab:lab/raw/l2`` is the mean squared CIE76 colour difference
per pixel, ``ycbcr:luma`` compares brightness only. They hold no weights: ``weights`` may be
``"imagenet"`` (percept's default), ``"none"`` or ``None``, and changes nothing.

==================  ==========================================================================
backbone            taps (canonical first)
==================  ==========================================================================
pixel               ``pixel``: the image in [0, 1] (grey input repeated to 3 channels)
gaussian_pyramid    ``level0``..``level4``: ``level0`` the image, each next one ``pyrdown`` (5x5
                    Gaussian blur, then every second pixel) of the previous one
laplacian_pyramid   ``band0``..``band3``: ``G_i - up(G_{i+1})`` (``up``: bilinear resize to ``G_i``'s
                    size), and ``lowpass`` = ``G_4``
lab                 ``lab``: CIE L*a*b* (D65; L in [0, 100], a and b about [-128, 127]); ``lightness``: L
ycbcr               ``ycbcr``: Y, Cb, Cr in [0, 1] (ITU-R BT.601, as kornia); ``luma``: Y
==================  ==========================================================================

kornia is imported when one of these is built, never at ``import percept``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torch import nn

from percept.backbones.base import Backbone, PretrainedCfg
from percept.errors import WeightsError
from percept.hookspecs import hookimpl

LEVELS = 5


def _kornia():
    try:
        import kornia
    except ImportError:  # pragma: no cover - kornia is a dependency of the test extra
        raise WeightsError("the non-deep backbones need kornia: `pip install kornia`") from None
    return kornia


class PyrDown(nn.Module):
    """One Gaussian pyramid step: kornia's ``pyrdown`` (5x5 Gaussian blur, reflect border, halve the size).

    Example:
        >>> PyrDown()(torch.rand(1, 3, 16, 12)).shape
        torch.Size([1, 3, 8, 6])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _kornia().geometry.transform.pyrdown(x)


class LaplacianStep(nn.Module):
    """From ``G_i`` (or the pair ``(band, G_i)`` of the step before) to the pair ``(G_i - up(G_{i+1}), G_{i+1})``.

    Example:
        >>> band, low = LaplacianStep()(torch.rand(1, 3, 16, 16))
        >>> band.shape, low.shape
        (torch.Size([1, 3, 16, 16]), torch.Size([1, 3, 8, 8]))
    """

    def forward(self, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        g = x[1] if isinstance(x, tuple) else x
        transform = _kornia().geometry.transform
        low = transform.pyrdown(g)
        up = transform.resize(low, tuple(g.shape[-2:]), interpolation="bilinear", align_corners=False)
        return g - up, low


class Lowpass(nn.Module):
    """The last Gaussian level of a Laplacian pyramid: the second of the pair ``(band, G)``."""

    def forward(self, x: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return x[1]


def first_of_pair(index: int, out: torch.Tensor | tuple, size: tuple[int, int]) -> torch.Tensor:
    """The band of a ``(band, G)`` pair (the tap of a Laplacian step); tensors pass unchanged."""
    return out[0] if isinstance(out, tuple) else out


class ColourSpace(nn.Module):
    """RGB in [0, 1] to ``"lab"`` or ``"ycbcr"`` with kornia.

    Example:
        >>> ColourSpace("ycbcr")(torch.ones(1, 3, 2, 2))[0, :, 0, 0].tolist()  # white: Y = 1, Cb = Cr = 0.5
        [1.0, 0.5, 0.5]
    """

    def __init__(self, space: str) -> None:
        super().__init__()
        if space not in ("lab", "ycbcr"):
            raise ValueError(f"colour space must be 'lab' or 'ycbcr', got {space!r}")
        self.space = space

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        color = _kornia().color
        return color.rgb_to_lab(x) if self.space == "lab" else color.rgb_to_ycbcr(x)

    def extra_repr(self) -> str:
        return f"space={self.space!r}"


class FirstChannel(nn.Module):
    """Channel 0 only, as ``(N, 1, H, W)`` (L of Lab, Y of YCbCr)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1]


def _stages(kind: str) -> tuple[list[tuple[str, nn.Module]], list[tuple[str, str, bool]]]:
    stages: list[tuple[str, nn.Module]]
    if kind == "pixel":
        return [("pixel", nn.Identity())], [("pixel", "pixel", True)]
    if kind == "gaussian_pyramid":
        stages = [("level0", nn.Identity())] + [(f"level{i}", PyrDown()) for i in range(1, LEVELS)]
        return stages, [(p, p, True) for p, _ in stages]
    if kind == "laplacian_pyramid":
        stages = [(f"band{i}", LaplacianStep()) for i in range(LEVELS - 1)] + [("lowpass", Lowpass())]
        return stages, [(p, p, True) for p, _ in stages]
    if kind in ("lab", "ycbcr"):
        channel = "lightness" if kind == "lab" else "luma"
        return [(kind, ColourSpace(kind)), (channel, FirstChannel())], [(kind, kind, True), (channel, channel, False)]
    raise ValueError(f"unknown non-deep backbone {kind!r}")


KINDS = {
    "pixel": "the image itself (pixel-space distances: MSE, PSNR-like, L1)",
    "gaussian_pyramid": "Gaussian pyramid, 5 levels (kornia pyrdown): multi-scale pixel distances",
    "laplacian_pyramid": "Laplacian pyramid, 4 band-pass levels and the low-pass residual (Burt & Adelson 1983)",
    "lab": "CIE L*a*b* colour space (D65), and its lightness channel",
    "ycbcr": "YCbCr (ITU-R BT.601), and its luma channel",
}


def create_kornia_backbone(
    kind: str, weights: object = None, *, input_range: tuple[float, float] = (0.0, 1.0)
) -> Backbone:
    """Build the non-deep backbone ``kind`` (one of :data:`KINDS`).

    Args:
        kind: ``"pixel"``, ``"gaussian_pyramid"``, ``"laplacian_pyramid"``, ``"lab"`` or ``"ycbcr"``.
        weights: ignored unless it names weights: these backbones have none (``None``, ``"none"``
            or ``"imagenet"``, percept's default, are accepted).
        input_range: range of the images passed; they are mapped to [0, 1] first.

    Returns:
        A :class:`Backbone` whose taps are ``(N, 3, h, w)`` maps (``(N, 1, H, W)`` for ``lightness``, ``luma``).

    Example:
        >>> bb = create_kornia_backbone("gaussian_pyramid")
        >>> [t.reduction for t in bb.feature_info]
        [1, 2, 4, 8, 16]
    """
    if weights is not None and str(weights).lower() not in ("imagenet", "none", "default"):
        raise WeightsError(f"backbone {kind!r} is not a network and has no weights; got weights={weights!r}")
    _kornia()
    stages, taps = _stages(kind)
    model = nn.Sequential()
    for path, module in stages:
        model.add_module(path, module)
    return Backbone(
        kind,
        model,
        stages,
        taps,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        input_range=input_range,
        pretrained_cfg=PretrainedCfg(
            tag="none", source="kornia (no weights)", license="Apache-2.0 (kornia)", task="none", data="none"
        ),
        to_map=first_of_pair if kind == "laplacian_pyramid" else None,
    )


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    for kind, description in KINDS.items():
        factory = functools.partial(create_kornia_backbone, kind)
        register(kind, factory, description=description, pretrained=())  # no weights


__all__: Sequence[str] = ("KINDS", "create_kornia_backbone")
