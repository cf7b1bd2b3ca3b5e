"""percept: any pretrained network as a differentiable perceptual loss or image-quality metric.

Example:
    >>> from percept import PerceptualLoss, PerceptualMetric, perceptual_distance
    >>> loss = PerceptualLoss("vgg16:conv3")           # doctest: +SKIP
    >>> metric = PerceptualMetric("lpips-alex")        # doctest: +SKIP
    >>> d = perceptual_distance(x, y, "lpips-vgg")     # doctest: +SKIP

Heavy modules (torchvision, torchmetrics, the backbones) load on first use, not at import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from percept.errors import (
    InputError,
    OutputError,
    PerceptError,
    PluginWarning,
    RandomWeightsWarning,
    RegistrationError,
    SpecError,
    TapError,
    WeightsError,
)
from percept.hookspecs import hookimpl
from percept.registry import list_backbones, list_distances, list_presets, list_readouts
from percept.spec import Spec, parse_spec

_LAZY = {
    "PerceptualLoss": "percept.loss",
    "PerceptualMetric": "percept.metric",
    "perceptual_distance": "percept.functional",
    "create_backbone": "percept.backbones.factory",
    "build_pipeline": "percept.pipeline",
    "Pipeline": "percept.pipeline",
    "Backbone": "percept.backbones.base",
    "Readout": "percept.readouts.base",
    "Distance": "percept.distances.base",
}

if TYPE_CHECKING:  # pragma: no cover
    __version__: str
    from percept.backbones.base import Backbone
    from percept.backbones.factory import create_backbone
    from percept.distances.base import Distance
    from percept.functional import perceptual_distance
    from percept.loss import PerceptualLoss
    from percept.metric import PerceptualMetric
    from percept.pipeline import Pipeline, build_pipeline
    from percept.readouts.base import Readout


def __getattr__(name: str):
    if name == "__version__":  # read from the installed metadata on first use (a few ms), not at import
        from percept._version import read_version

        globals()["__version__"] = version = read_version()
        return version
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'percept' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "__version__"})


__all__ = [
    "Backbone",
    "Distance",
    "InputError",
    "OutputError",
    "PerceptError",
    "PerceptualLoss",
    "PerceptualMetric",
    "Pipeline",
    "PluginWarning",
    "RandomWeightsWarning",
    "Readout",
    "RegistrationError",
    "Spec",
    "SpecError",
    "TapError",
    "WeightsError",
    "build_pipeline",
    "create_backbone",
    "hookimpl",
    "list_backbones",
    "list_distances",
    "list_presets",
    "list_readouts",
    "parse_spec",
    "perceptual_distance",
]
