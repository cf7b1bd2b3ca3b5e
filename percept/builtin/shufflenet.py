"""ShuffleNetV2 x0.5/x1.0/x1.5/x2.0 (Ma 2018) from torchvision.

Taps: ``stage1``, ``stage2`` ... (canonical): the last of ``conv1, maxpool, stage2, stage3, stage4,
conv5`` at each resolution.
"""

from __future__ import annotations

from collections.abc import Callable

from percept.builtin._torchvision import Family, named_children, named_stride_taps, register_families
from percept.hookspecs import hookimpl

CHILDREN = ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5")
FAMILIES = {
    f"shufflenet_v2_{w}": Family(
        named_children(CHILDREN), named_stride_taps(CHILDREN), ("fc",), f"ShuffleNetV2 {w} (Ma 2018)"
    )
    for w in ("x0_5", "x1_0", "x1_5", "x2_0")
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
