"""Swin Transformer T/S/B (Liu 2021) and Swin V2 T/S/B (Liu 2022) from torchvision.

Taps: ``stage1``..``stage4`` (canonical), channels-last outputs turned into ``(N, C, h, w)`` maps; also
``embed`` (the patch embedding) and ``norm``.
"""

from __future__ import annotations

from collections.abc import Callable

from percept.backbones.base import flatten_stages
from percept.builtin._maps import channels_last_to_map
from percept.builtin._torchvision import Family, Model, Stages, Taps, register_families
from percept.hookspecs import hookimpl


def swin_stages(model: Model) -> Stages:
    """The patch embedding (one stage), the blocks of each later ``features`` entry, the final norm."""
    # The patch embedding (conv, permute, norm) stays one stage, so every stage returns (N, H, W, C).
    out: Stages = [("features.0", model.features[0])]
    for i in range(1, len(model.features)):
        out.extend(flatten_stages(model.features[i], f"features.{i}"))
    out.append(("norm", model.norm))
    return out


def swin_taps(model: Model) -> Taps:
    """``stage1``..``stage4`` (``features.1, 3, 5, 7``), ``embed`` and ``norm``."""
    return [(f"stage{i // 2 + 1}", f"features.{i}", True) for i in (1, 3, 5, 7)] + [
        ("embed", "features.0", False),
        ("norm", "norm", False),
    ]


FAMILIES = {
    name: Family(
        swin_stages,
        swin_taps,
        ("avgpool", "head"),
        f"Swin Transformer{' V2' if 'v2' in name else ''}-{name[-1].upper()} (Liu 2021/2022), ImageNet-1k",
        to_map=channels_last_to_map,
        meta_init=False,
    )
    for name in ("swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b")
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
