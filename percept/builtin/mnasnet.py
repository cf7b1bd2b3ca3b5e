"""MnasNet 0.5/0.75/1.0/1.3 (Tan 2019) from torchvision.

Taps: ``stage1``, ``stage2`` ... (canonical): the last block of ``layers`` at each resolution;
``block<i>``: each child of ``layers``.
"""

from __future__ import annotations

from collections.abc import Callable

from percept.backbones.base import flatten_stages
from percept.builtin._torchvision import Family, Model, Stages, Taps, register_families, stride_taps
from percept.hookspecs import hookimpl


def mnasnet_stages(model: Model) -> Stages:
    """``model.layers`` flattened into stages."""
    return flatten_stages(model.layers, "layers")


def mnasnet_taps(model: Model) -> Taps:
    """:func:`~percept.builtin._torchvision.stride_taps` over ``layers``, each child also ``block<i>``."""
    return stride_taps([(f"layers.{n}", m) for n, m in model.layers.named_children()], fine="block")


FAMILIES = {
    f"mnasnet{w}": Family(mnasnet_stages, mnasnet_taps, ("classifier",), f"MnasNet {w} (Tan 2019), ImageNet-1k")
    for w in ("0_5", "0_75", "1_0", "1_3")
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
