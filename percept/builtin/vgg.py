"""VGG (Simonyan & Zisserman 2014) from torchvision: vgg11..vgg19, with and without batch norm.

Taps: ``conv1``..``conv5`` (canonical), the last ReLU of each block (VGG16: relu1_2 .. relu5_3); also
``conv<b>_<i>`` (before its ReLU), ``bn<b>_<i>``, ``relu<b>_<i>`` and ``pool<b>``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from percept.builtin._torchvision import Family, Model, Taps, canonical_first, features_stages, register_families
from percept.hookspecs import hookimpl


def vgg_taps(model: Model, pools: tuple[type[nn.Module], ...] = (nn.MaxPool2d,)) -> Taps:
    """VGG's taps; ``pools``: the module types that end a block (DISTS' VGG16 adds its L2 pooling).

    Example:
        >>> import torchvision
        >>> [t for t in vgg_taps(torchvision.models.vgg16()) if t[0] == "conv3"]
        [('conv3', 'features.15', True)]
    """
    taps: Taps = []
    block, conv, last_relu = 1, 0, ""
    for name, module in features_stages(model):
        if isinstance(module, nn.Conv2d):
            conv += 1
            taps.append((f"conv{block}_{conv}", name, False))
        elif isinstance(module, nn.BatchNorm2d):
            taps.append((f"bn{block}_{conv}", name, False))
        elif isinstance(module, nn.ReLU):
            taps.append((f"relu{block}_{conv}", name, False))
            last_relu = name
        elif isinstance(module, pools):
            taps.append((f"conv{block}", last_relu, True))
            taps.append((f"pool{block}", name, False))
            block, conv = block + 1, 0
    return canonical_first(taps)


VGG = Family(features_stages, vgg_taps, ("avgpool", "classifier"), "VGG (Simonyan & Zisserman 2014), ImageNet-1k")
FAMILIES = {name: VGG for name in ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
