"""MaxViT-T (Tu 2022) from torchvision; it runs at 224x224 only (``resize=True`` resizes).

Taps: ``stem``, ``stage1``..``stage4`` (canonical); ``block<n>``: each layer (MBConv, block attention,
grid attention) of every block.
"""

from __future__ import annotations

from collections.abc import Callable

from percept.backbones.base import flatten_stages
from percept.builtin._torchvision import Family, Model, Stages, Taps, register_families
from percept.hookspecs import hookimpl


def maxvit_stages(model: Model) -> Stages:
    """The stem, then each layer of every block (a block runs its layers from a ``ModuleList``)."""
    out = flatten_stages(model.stem, "stem")
    for i, block in enumerate(model.blocks):
        out += [(f"blocks.{i}.layers.{j}", layer) for j, layer in enumerate(block.layers)]
    return out


def maxvit_taps(model: Model) -> Taps:
    """``stem`` and ``stage<i>`` (canonical), ``block<n>`` for each layer."""
    taps: Taps = [("stem", "stem", True)] + [(f"stage{i + 1}", f"blocks.{i}", True) for i in range(len(model.blocks))]
    layers = [f"blocks.{i}.layers.{j}" for i, block in enumerate(model.blocks) for j in range(len(block.layers))]
    return taps + [(f"block{n}", path, False) for n, path in enumerate(layers)]


FAMILIES = {
    "maxvit_t": Family(
        maxvit_stages,
        maxvit_taps,
        ("classifier",),
        "MaxViT-T (Tu 2022), ImageNet-1k; runs at 224x224 only",
        meta_init=False,
        fixed_size=True,
    ),
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
