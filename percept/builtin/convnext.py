"""ConvNeXt Tiny/Small/Base/Large (Liu 2022) from torchvision.

Taps: ``stage1``, ``stage2`` ... (canonical): the last block at each resolution; ``block<i>``: each
child of ``features``. Random weights are made on the CPU (the layer scales are raw parameters).
"""

from __future__ import annotations

from collections.abc import Callable

from percept.builtin._torchvision import Family, features_stages, features_stride_taps, register_families
from percept.hookspecs import hookimpl

FAMILIES = {
    f"convnext_{s}": Family(
        features_stages,
        features_stride_taps,
        ("avgpool", "classifier"),
        f"ConvNeXt-{s.capitalize()} (Liu 2022), ImageNet-1k",
        meta_init=False,
    )
    for s in ("tiny", "small", "base", "large")
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
