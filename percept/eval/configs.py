"""Named sets of backbone configurations for studies, and what each configuration is.

A sweep over dozens of networks compares them by how they were made: the architecture, the function
they were trained for, the data. ``percept sweep --backbones @seed46`` names the set below; every
configuration in it carries those three labels, so the figure of correlation against relative depth
can colour its lines by any of them (``--group-by``).

``seed46``: 46 configurations, a seed-scale study of deep features as quality metrics:

* ImageNet-supervised CNNs of several depths and designs (torchvision): AlexNet, VGG-11/16/19,
  SqueezeNet, ResNet-18/34/50/101, ResNeXt-50, DenseNet-121, GoogLeNet, Inception v3, MobileNet v2/v3,
  MnasNet, ShuffleNet v2, EfficientNet-B0, EfficientNetV2-S, RegNetX/Y-1.6GF, ConvNeXt-T;
* vision transformers: ViT-B/16 and B/32 (torchvision), ViT-Ti/16 and DeiT-Ti/16 (timm);
* Swin: Swin-T and Swin-V2-T (torchvision), Swin-T (timm);
* self-supervised: DINO ViT-S/16, MAE ViT-B/16, DINOv2 ViT-S/14, EVA-02-Ti (masked image modelling);
* image-text: CLIP ViT-B/16 (OpenAI);
* semi- and weakly supervised ResNet-50 (SSL on YFCC100M, SWSL on Instagram-1B) beside the supervised
  ResNet-50 A1 recipe (timm);
* segmentation (COCO with VOC classes): FCN-ResNet50, DeepLabV3-ResNet50, DeepLabV3-MobileNetV3,
  LR-ASPP-MobileNetV3;
* non-deep baselines (kornia): pixel, Gaussian and Laplacian pyramids, Lab, YCbCr.

Example:
    >>> len(CONFIG_SETS["seed46"])
    46
    >>> expand_backbones(["@seed46"])[:3]
    ['alexnet', 'vgg11', 'vgg16']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from percept.errors import SpecError, unknown_name


@dataclass(frozen=True)
class Config:
    """One configuration of a study: the backbone name and how it was made.

    Attributes:
        backbone: registered name (``"resnet50"``, ``"timm.vit_small_patch16_224.dino"``).
        architecture: ``CNN``, ``ViT``, ``Swin``, ``segmentation CNN`` or ``non-deep``.
        training: the function trained for: ``supervised classification``, ``self-supervised``,
            ``image-text contrastive``, ``semi-supervised``, ``weakly supervised``, ``segmentation``, ``none``.
        data: the training data (``ImageNet-1k``, ``LVD-142M``, ...).
    """

    backbone: str
    architecture: str
    training: str
    data: str


GROUPINGS = ("training", "data", "architecture")

_SUP, _IN1K = "supervised classification", "ImageNet-1k"


def _cnn(name: str) -> Config:
    return Config(name, "CNN", _SUP, _IN1K)


SEED46: tuple[Config, ...] = (
    *(
        _cnn(n)
        for n in (
            "alexnet",
            "vgg11",
            "vgg16",
            "vgg19",
            "squeezenet1_1",
            "resnet18",
            "resnet34",
            "resnet50",
            "resnet101",
            "resnext50_32x4d",
            "densenet121",
            "googlenet",
            "inception_v3",
            "mobilenet_v2",
            "mobilenet_v3_large",
            "mnasnet1_0",
            "shufflenet_v2_x1_0",
            "efficientnet_b0",
            "efficientnet_v2_s",
            "regnet_x_1_6gf",
            "regnet_y_1_6gf",
            "convnext_tiny",
        )
    ),
    Config("vit_b_16", "ViT", _SUP, _IN1K),
    Config("vit_b_32", "ViT", _SUP, _IN1K),
    Config("timm.vit_tiny_patch16_224", "ViT", _SUP, "ImageNet-21k, then ImageNet-1k"),
    Config("timm.deit_tiny_patch16_224", "ViT", _SUP, _IN1K),
    Config("swin_t", "Swin", _SUP, _IN1K),
    Config("swin_v2_t", "Swin", _SUP, _IN1K),
    Config("timm.swin_tiny_patch4_window7_224.ms_in1k", "Swin", _SUP, _IN1K),
    Config("timm.vit_small_patch16_224.dino", "ViT", "self-supervised", "ImageNet-1k (no labels)"),
    Config("timm.vit_base_patch16_224.mae", "ViT", "self-supervised", "ImageNet-1k (no labels)"),
    Config("timm.vit_small_patch14_dinov2.lvd142m", "ViT", "self-supervised", "LVD-142M (no labels)"),
    Config("timm.eva02_tiny_patch14_224.mim_in22k", "ViT", "self-supervised", "ImageNet-22k (no labels)"),
    Config("timm.vit_base_patch16_clip_224.openai", "ViT", "image-text contrastive", "WIT-400M image-text pairs"),
    Config("timm.resnet50.a1_in1k", "CNN", _SUP, _IN1K),
    Config("timm.resnet50.fb_ssl_yfcc100m_ft_in1k", "CNN", "semi-supervised", "YFCC100M, then ImageNet-1k"),
    Config("timm.resnet50.fb_swsl_ig1b_ft_in1k", "CNN", "weakly supervised", "Instagram-1B, then ImageNet-1k"),
    Config("fcn_resnet50", "segmentation CNN", "segmentation", "COCO (VOC classes)"),
    Config("deeplabv3_resnet50", "segmentation CNN", "segmentation", "COCO (VOC classes)"),
    Config("deeplabv3_mobilenet_v3_large", "segmentation CNN", "segmentation", "COCO (VOC classes)"),
    Config("lraspp_mobilenet_v3_large", "segmentation CNN", "segmentation", "COCO (VOC classes)"),
    *(
        Config(n, "non-deep", "none", "none")
        for n in ("pixel", "gaussian_pyramid", "laplacian_pyramid", "lab", "ycbcr")
    ),
)

CONFIG_SETS: dict[str, tuple[Config, ...]] = {"seed46": SEED46}


def expand_backbones(names: Sequence[str]) -> list[str]:
    """Backbone names with every ``@set`` replaced by the names of its configurations (duplicates dropped).

    Example:
        >>> expand_backbones(["vgg16", "@seed46"])[:2]
        ['vgg16', 'alexnet']
    """
    out: list[str] = []
    for name in names:
        if name.startswith("@"):
            key = name[1:]
            if key not in CONFIG_SETS:
                raise SpecError(unknown_name("configuration set", name, [f"@{k}" for k in CONFIG_SETS]))
            out.extend(c.backbone for c in CONFIG_SETS[key])
        else:
            out.append(name)
    return list(dict.fromkeys(out))


def describe(backbone: str) -> Config:
    """How ``backbone`` was made, as a named set records it; ``other``/``unknown`` labels for a backbone in none.

    Example:
        >>> describe("timm.vit_small_patch16_224.dino").training
        'self-supervised'
    """
    for configs in CONFIG_SETS.values():
        for config in configs:
            if config.backbone == backbone:
                return config
    return Config(backbone, "other", "unknown", "unknown")
