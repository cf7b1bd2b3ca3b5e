"""EfficientNet B0..B7 (Tan 2019) and V2 S/M/L (Tan 2021) from torchvision.

Taps: ``stage1``, ``stage2`` ... (canonical): the last block at each resolution; ``block<i>``: each
child of ``features``.
"""

from __future__ import annotations

from collections.abc import Callable

from percept.builtin._torchvision import Family, features_stages, features_stride_taps, register_families
from percept.hookspecs import hookimpl

FAMILIES = {
    f"efficientnet_{v}": Family(
        features_stages, features_stride_taps, ("avgpool", "classifier"), f"EfficientNet-{v.upper()} (Tan 2019/2021)"
    )
    for v in ("b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "v2_s", "v2_m", "v2_l")
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
