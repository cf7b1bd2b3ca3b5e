"""ResNet (He 2015), Wide ResNet (Zagoruyko 2016) and ResNeXt (Xie 2017) from torchvision.

Taps: ``stem`` (after the first ReLU), ``layer1``..``layer4`` (canonical); also ``pool`` (the stem's
max-pool) and module paths such as ``layer2.1``.
"""

from __future__ import annotations

from collections.abc import Callable

from percept.builtin._torchvision import Family, Model, Stages, Taps, children_stages, register_families
from percept.hookspecs import hookimpl


def resnet_stages(model: Model) -> Stages:
    """The stem's four modules, then the blocks of ``layer1``..``layer4``."""
    stem: Stages = [(n, getattr(model, n)) for n in ("conv1", "bn1", "relu", "maxpool")]
    return stem + children_stages(model, ("layer1", "layer2", "layer3", "layer4"))


def resnet_taps(model: Model) -> Taps:
    """``stem``, ``layer1``..``layer4`` (canonical) and ``pool``."""
    return [
        ("stem", "relu", True),
        ("layer1", "layer1", True),
        ("layer2", "layer2", True),
        ("layer3", "layer3", True),
        ("layer4", "layer4", True),
        ("pool", "maxpool", False),
    ]


RESNET = Family(resnet_stages, resnet_taps, ("avgpool", "fc"), "ResNet (He 2015), ImageNet-1k")
FAMILIES = {
    **{name: RESNET for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")},
    **{
        name: Family(resnet_stages, resnet_taps, ("avgpool", "fc"), desc)
        for name, desc in (
            ("wide_resnet50_2", "Wide ResNet-50-2 (Zagoruyko 2016), ImageNet-1k"),
            ("wide_resnet101_2", "Wide ResNet-101-2 (Zagoruyko 2016), ImageNet-1k"),
            ("resnext50_32x4d", "ResNeXt-50 32x4d (Xie 2017), ImageNet-1k"),
            ("resnext101_32x8d", "ResNeXt-101 32x8d (Xie 2017), ImageNet-1k"),
            ("resnext101_64x4d", "ResNeXt-101 64x4d (Xie 2017), ImageNet-1k"),
        )
    },
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
