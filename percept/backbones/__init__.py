"""Backbones: networks with named taps. ``create_backbone(name)`` builds any registered one."""

from percept.backbones.base import Backbone, PretrainedCfg, TapInfo
from percept.backbones.factory import create_backbone

__all__ = ["Backbone", "PretrainedCfg", "TapInfo", "create_backbone"]
