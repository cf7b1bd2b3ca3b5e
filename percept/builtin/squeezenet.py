"""SqueezeNet 1.0 and 1.1 (Iandola 2016) from torchvision.

Taps: ``relu1`` and the fire modules ``fire3, fire5`` .. ``fire9`` (canonical; for 1.1 the taps LPIPS
uses); also ``conv1``, ``fire2``, ``fire4`` and the pools.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from percept.builtin._torchvision import Family, Model, Taps, canonical_first, features_stages, register_families
from percept.hookspecs import hookimpl


def squeezenet_taps(model: Model) -> Taps:
    """``conv1``, ``relu1``, ``fire<i>`` and ``pool<i>``, the LPIPS taps canonical.

    Example:
        >>> import torchvision
        >>> [t[0] for t in squeezenet_taps(torchvision.models.squeezenet1_1()) if t[2]][:3]
        ['relu1', 'fire3', 'fire5']
    """
    names = {"features.0": "conv1", "features.1": "relu1"}
    fire = 2
    for path, module in list(model.features.named_children())[2:]:
        if isinstance(module, nn.MaxPool2d):
            names[f"features.{path}"] = f"pool{fire - 1}"
        else:
            names[f"features.{path}"] = f"fire{fire}"
            fire += 1
    canonical = {"relu1", "fire3", "fire5", "fire6", "fire7", "fire8", "fire9"}
    return canonical_first([(n, p, n in canonical) for p, n in names.items()])


FAMILIES = {
    name: Family(
        features_stages, squeezenet_taps, ("classifier",), f"SqueezeNet {name[-3:]} (Iandola 2016), ImageNet-1k"
    )
    for name in ("squeezenet1_0", "squeezenet1_1")
}


@hookimpl
def register_backbones(register: Callable[..., None]) -> None:
    register_families(register, FAMILIES)
