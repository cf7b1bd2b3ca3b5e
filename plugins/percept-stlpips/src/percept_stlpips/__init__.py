"""percept-stlpips: shift-tolerant LPIPS (Ghildyal & Liu, ECCV 2022) as percept backbones and presets.

Registers the backbones ``stlpips.alexnet`` and ``stlpips.vgg16`` and the presets ``stlpips-alex``
and ``stlpips-vgg`` through the entry point ``stlpips`` of the group ``percept``. The weights are
the files the ``stlpips-pytorch`` package ships; nothing is downloaded.

Example:
    >>> from percept import perceptual_distance
    >>> d = perceptual_distance(x, y, "stlpips-alex")  # (N,)  # doctest: +SKIP
"""

from percept_stlpips.networks import (
    BlurPool2d,
    ShiftTolerantAlexNet,
    ShiftTolerantVGG16,
    create_stlpips_backbone,
    stlpips_weight_file,
)
from percept_stlpips.presets import create_stlpips

__version__ = "0.1.0"

__all__ = [
    "BlurPool2d",
    "ShiftTolerantAlexNet",
    "ShiftTolerantVGG16",
    "create_stlpips",
    "create_stlpips_backbone",
    "stlpips_weight_file",
]
