"""Vision transformers ViT-B/16, B/32, L/16, L/32, H/14 (Dosovitskiy 2021) from torchvision.

Taps: every quarter of the encoder blocks (canonical), as maps of the tokens without the class token;
also ``block<i>`` for each block, ``embed`` and ``norm``. Any size holding one patch runs: the position
embedding is resampled to the patch grid.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from percept.builtin._maps import tokens_to_map
from percept.builtin._torchvision import Family, Model, Stages, Taps, canonical_first, register_families
from percept.hookspecs import hookimpl


class ViTEmbed(nn.Module):
    """torchvision ViT's input stage: patches, class token, position embedding, dropout.

    The position embedding is resampled (bicubic, as timm does) when the patch grid is not the one
    the model was trained at, so any size that holds one patch runs; at the training size the result
    is torchvision's to the bit.

    Example:
        >>> import torchvision
        >>> vit = torchvision.models.vit_b_32(weights=None)
        >>> ViTEmbed(vit)(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 5, 768])
    """

    vit: Any  # the torchvision ViT, kept out of the submodules

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.__dict__["vit"] = vit  # not a submodule: its parameters belong to the model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vit = self.vit
        x = vit.conv_proj(x)
        n, d, h, w = x.shape
        x = x.reshape(n, d, h * w).permute(0, 2, 1)
        x = torch.cat([vit.class_token.expand(n, -1, -1), x], dim=1)
        pos = vit.encoder.pos_embedding
        if pos.shape[1] != h * w + 1:
            side = round((pos.shape[1] - 1) ** 0.5)
            grid = pos[:, 1:].reshape(1, side, side, d).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
            pos = torch.cat([pos[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)
        return vit.encoder.dropout(x + pos)


def vit_stages(model: Model) -> Stages:
    """``embed`` (:class:`ViTEmbed`), each encoder block, the final norm."""
    out: Stages = [("embed", ViTEmbed(model))]
    out += [(f"encoder.layers.{n}", m) for n, m in model.encoder.layers.named_children()]
    out.append(("encoder.ln", model.encoder.ln))
    return out


def vit_taps(model: Model) -> Taps:
    """``block<i>`` for each block (the last of each quarter canonical), ``embed`` and ``norm``."""
    depth = len(model.encoder.layers)
    quarters = {depth * q // 4 - 1 for q in (1, 2, 3, 4)}
    taps: Taps = [(f"block{i}", f"encoder.layers.encoder_layer_{i}", i in quarters) for i in range(depth)]
    return canonical_first([("embed", "embed", False), *taps, ("norm", "encoder.ln", False)])


FAMILIES = {
    f"vit_{s}_{p}": Family(
        vit_stages,
        vit_taps,
        ("heads",),
        f"ViT-{s.upper()}/{p} (Dosovitskiy 2021), ImageNet-1k",
        to_map=functools.partial(tokens_to_map, patch=int(p), prefix=1),
        meta_init=False,
    )
    for s, p in (("b", "16"), ("b", "32"), ("l", "16"), ("l", "32"), ("h", "14"))
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
