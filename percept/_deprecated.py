"""Old module paths kept importable for one release, each forwarding to where its code moved.

An old module (``percept.presets``) holds only a docstring and ``__getattr__ = moved(__name__,
"percept.builtin.lpips")``: reading an attribute through it warns with a ``DeprecationWarning``
naming the new path and returns the new module's attribute, the same object. The new module is
imported by name inside ``__getattr__``, so an old module imports nothing at its own import. The
shims go in the next release; :data:`SHIMS` lists them (the layer test exempts exactly these).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

SHIMS: tuple[str, ...] = (
    "percept.backbones.torchvision",
    "percept.backbones.timm",
    "percept.backbones.kornia",
    "percept.presets",
    "percept.presets_dists",
    "percept.distances.basic",
    "percept.distances.dists",
    "percept.distances.ssim",
    "percept.distances.style",
    "percept.readouts.basic",
    "percept.readouts.descriptors",
)


def moved(old: str, new: str, *more: str, public: Mapping[str, str] | None = None) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for the old module ``old``, forwarding to the module ``new``.

    Args:
        old: the old module's name (pass ``__name__``).
        new: the module the code moved to (``"percept.builtin.lpips"``).
        more: further modules that took part of ``old`` (searched after ``new``, in order).
        public: for names whose new module is private (a part starting with ``_``), the public way to
            reach them (``{"create_torchvision_backbone": "percept.create_backbone(name)"}``).

    Returns:
        ``__getattr__(name)``: warns ``DeprecationWarning`` and returns ``new``'s attribute; an attribute
        ``new`` lacks raises ``AttributeError`` naming both. The warning names the new public path
        (``old.name`` moved to ``new.name``); a private module's path is never named: the ``public``
        replacement instead, or that there is none.

    Example:
        >>> import warnings
        >>> getattr_ = moved("percept.old_place", "percept.errors")
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     error = getattr_("SpecError")
        >>> error.__module__, caught[0].category.__name__
        ('percept.errors', 'DeprecationWarning')
    """

    def __getattr__(name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):  # import machinery probing: no warning
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        for target in (new, *more):
            module = importlib.import_module(target)
            if hasattr(module, name):
                break
        else:
            places = " or ".join(repr(t) for t in (new, *more))
            raise AttributeError(f"module {old!r} has no attribute {name!r} (it moved to {places}, which lack it too)")
        warnings.warn(_message(old, name, target, (public or {}).get(name)), DeprecationWarning, stacklevel=2)
        return getattr(module, name)

    return __getattr__


def _message(old: str, name: str, target: str, replacement: str | None) -> str:
    ending = "the old path goes in the next release of percept"
    if replacement is not None:
        return f"{old}.{name} is deprecated: use {replacement}; {ending}"
    if any(part.startswith("_") for part in target.split(".")):
        return f"{old}.{name} is deprecated and internal to percept now, with no public replacement; {ending}"
    return f"{old}.{name} moved to {target}.{name}; {ending}"
