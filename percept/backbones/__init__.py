"""Backbones: networks with named taps. ``create_backbone(name)`` builds any registered one;
``stage_shapes(backbone)`` gives the traced ``(channels, reduction)`` of each of its stages."""

from percept.backbones.base import Backbone, PretrainedCfg, TapInfo
from percept.backbones.factory import create_backbone
from percept.backbones.probe import StageShape, stage_shapes

__all__ = ["Backbone", "PretrainedCfg", "StageShape", "TapInfo", "create_backbone", "stage_shapes"]
