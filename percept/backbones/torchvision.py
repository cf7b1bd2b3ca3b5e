"""Moved to :mod:`percept.builtin._torchvision`, :mod:`percept.builtin.dists`, :mod:`percept.builtin._maps`.

This module forwards every attribute there with a ``DeprecationWarning``; it goes in the next release.
"""

from percept._deprecated import moved

__getattr__ = moved(
    __name__,
    "percept.builtin._torchvision",
    "percept.builtin.dists",
    "percept.builtin._maps",
    public={
        "create_torchvision_backbone": "percept.create_backbone(name, weights=...)",
        "FAMILIES": "percept.list_backbones()",
    },
)
