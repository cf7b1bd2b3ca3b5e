"""DenseNet-121/161/169/201 (Huang 2017) from torchvision.

Taps: ``stage1``, ``stage2`` ... (canonical): the last block at each resolution; ``block<i>``: each
child of ``features``.
"""

from __future__ import annotations

from collections.abc import Callable

from percept.builtin._torchvision import Family, features_stages, features_stride_taps, register_families
from percept.hookspecs import hookimpl

FAMILIES = {
    name: Family(
        features_stages, features_stride_taps, ("classifier",), f"DenseNet-{name[8:]} (Huang 2017), ImageNet-1k"
    )
    for name in ("densenet121", "densenet161", "densenet169", "densenet201")
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
