"""Segmentation nets from torchvision: FCN and DeepLabV3 (ResNet-50/101, MobileNetV3), LR-ASPP.

Taps: ResNet trunks: ``stem``, ``layer1``..``layer4`` (dilated ``layer3``/``layer4`` at stride 8) and
``head`` (the last ReLU of the FCN/DeepLab head); MobileNetV3 trunks: ``stage1``, ``stage2`` ... (the
LR-ASPP head takes two inputs at once and is not a tap). Weights: COCO-train2017 with the 20 VOC
classes (``weights="imagenet"`` and ``"coco"`` both name them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from percept.backbones.base import flatten_stages
from percept.builtin._torchvision import Family, Model, Stages, Taps, register_families, stride_taps
from percept.hookspecs import hookimpl

SEGMENTATION: dict[str, Any] = {"task": "segmentation", "data": "COCO-train2017 (VOC classes)"}


def seg_stages(model: Model) -> Stages:
    """The trunk's children flattened, then the head where it is a ``Sequential`` run on the last features."""
    out = [(f"backbone.{n}", m) for n, m in model.backbone.named_children()]
    out = [s for path, m in out for s in flatten_stages(m, path)]
    if isinstance(model.classifier, nn.Sequential):  # FCN and DeepLab heads run on the last features
        out.extend(flatten_stages(model.classifier, "classifier"))
    return out


def seg_taps(model: Model) -> Taps:
    """ResNet trunk: ``stem``, ``layer1``..``layer4``; MobileNetV3 trunk: ``stage<i>``; and ``head``."""
    names = [n for n, _ in model.backbone.named_children()]
    if "layer4" in names:  # a ResNet trunk
        taps: Taps = [("stem", "backbone.relu", True)] + [
            (f"layer{i}", f"backbone.layer{i}", True) for i in range(1, 5)
        ]
    else:  # a MobileNetV3 trunk (dilated)
        taps = stride_taps([(f"backbone.{n}", m) for n, m in model.backbone.named_children()])
    if isinstance(model.classifier, nn.Sequential):
        relus = [i for i, m in enumerate(model.classifier) if isinstance(m, nn.ReLU)]
        taps.append(("head", f"classifier.{relus[-1]}", True))
    return taps


FAMILIES = {
    **{
        name: Family(
            seg_stages,
            seg_taps,
            ("aux_classifier",),
            f"{title} segmentation (torchvision), COCO subset with the 20 VOC classes",
            build_kwargs={"weights_backbone": None, "aux_loss": True},
            **SEGMENTATION,
        )
        for name, title in (
            ("fcn_resnet50", "FCN ResNet-50"),
            ("fcn_resnet101", "FCN ResNet-101"),
            ("deeplabv3_resnet50", "DeepLabV3 ResNet-50"),
            ("deeplabv3_resnet101", "DeepLabV3 ResNet-101"),
            ("deeplabv3_mobilenet_v3_large", "DeepLabV3 MobileNetV3-Large"),
        )
    },
    "lraspp_mobilenet_v3_large": Family(
        seg_stages,
        seg_taps,
        ("classifier",),  # LR-ASPP's head takes the trunk's low and high features at once: not a stage
        "LR-ASPP MobileNetV3-Large segmentation (torchvision), COCO subset with the 20 VOC classes",
        build_kwargs={"weights_backbone": None},
        **SEGMENTATION,
    ),
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
