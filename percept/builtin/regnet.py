"""RegNetX and RegNetY (Radosavovic 2020) from torchvision.

Taps: ``stem``, ``block1``..``block4`` (canonical). The builder computes its widths with tensors, so
shapes are traced on the CPU rather than the meta device.
"""

from __future__ import annotations

from collections.abc import Callable

from percept.builtin._torchvision import Family, Model, Stages, Taps, children_stages, register_families
from percept.hookspecs import hookimpl


def regnet_stages(model: Model) -> Stages:
    """``stem`` then the blocks of ``trunk_output``."""
    return children_stages(model, ("stem", "trunk_output"))


def regnet_taps(model: Model) -> Taps:
    """``stem`` and ``block1``..``block4``, all canonical."""
    return [("stem", "stem", True)] + [(f"block{i}", f"trunk_output.block{i}", True) for i in range(1, 5)]


FAMILIES = {
    f"regnet_{k}_{s}": Family(
        regnet_stages,
        regnet_taps,
        ("avgpool", "fc"),
        f"RegNet{k.upper()}-{s} (Radosavovic 2020), ImageNet-1k",
        meta_init=False,
        meta_trace=False,
    )
    for k, sizes in (
        ("x", ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")),
        ("y", ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf")),
    )
    for s in sizes
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
