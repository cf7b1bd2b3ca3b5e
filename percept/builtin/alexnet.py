"""AlexNet (Krizhevsky 2012) from torchvision.

Taps: ``conv1``..``conv5`` (canonical), the ReLU outputs LPIPS uses (``features.1, 4, 7, 9, 11``);
also ``relu1``..``relu5`` (the same modules) and ``pool1``, ``pool2``, ``pool5``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from percept.builtin._torchvision import Family, Model, Taps, canonical_first, features_stages, register_families
from percept.hookspecs import hookimpl


def alexnet_taps(model: Model) -> Taps:
    """``conv<i>`` (canonical) and ``relu<i>`` at each ReLU, ``pool<i>`` at each max-pool.

    Example:
        >>> import torchvision
        >>> [t[0] for t in alexnet_taps(torchvision.models.alexnet())][:5]
        ['conv1', 'conv2', 'conv3', 'conv4', 'conv5']
    """
    taps: Taps = []
    conv = 0
    for name, module in features_stages(model):
        if isinstance(module, nn.Conv2d):
            conv += 1
        elif isinstance(module, nn.ReLU):
            taps += [(f"conv{conv}", name, True), (f"relu{conv}", name, False)]
        elif isinstance(module, nn.MaxPool2d):
            taps.append((f"pool{conv}", name, False))
    return canonical_first(taps)


FAMILIES = {
    "alexnet": Family(
        features_stages, alexnet_taps, ("avgpool", "classifier"), "AlexNet (Krizhevsky 2012), ImageNet-1k"
    ),
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
