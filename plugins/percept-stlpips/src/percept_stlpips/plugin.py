"""Hook implementations: what percept-stlpips registers (the entry point ``stlpips`` points here)."""

from __future__ import annotations

from collections.abc import Callable

import percept
from percept.plugin import Backbone, Pipeline
from percept_stlpips.networks import NETS, create_stlpips_backbone
from percept_stlpips.presets import create_stlpips


def _backbone(net: str) -> Callable[..., Backbone]:
    def factory(weights="stlpips", **kwargs) -> Backbone:
        return create_stlpips_backbone(net, weights, **kwargs)

    factory.__name__ = f"create_{NETS[net][0].replace('.', '_')}"
    return factory


def _preset(net: str) -> Callable[..., Pipeline]:
    def factory(**kwargs) -> Pipeline:
        return create_stlpips(net, **kwargs)

    factory.__name__ = f"create_stlpips_{net}"
    return factory


@percept.hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    for net, (name, _, _, description) in NETS.items():
        register(name, _backbone(net), description=description)


@percept.hookimpl
def register_presets(register: Callable[..., None]) -> None:
    register("stlpips-alex", _preset("alex"), description="ST-LPIPS, shift-tolerant AlexNet (Ghildyal & Liu 2022)")
    register("stlpips-vgg", _preset("vgg"), description="ST-LPIPS, shift-tolerant VGG16 (Ghildyal & Liu 2022)")
