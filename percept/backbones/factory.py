"""``create_backbone``: the timm-style factory over every registered backbone."""

from __future__ import annotations

from percept.backbones.base import Backbone
from percept.errors import PerceptError, RegistrationError


def create_backbone(name: str, weights="imagenet", **kwargs) -> Backbone:
    """Build the registered backbone ``name``.

    Args:
        name: a registered backbone (``percept list backbones``), e.g. ``"vgg16"``.
        weights: ``"imagenet"`` (default), another tag the backbone knows, a path to a local
            state_dict file, or ``None`` for random weights (with a warning).
        **kwargs: passed to the backbone's factory (``input_range=(-1, 1)``; ``resize=True`` for timm
            and torchvision backbones: inputs resized to the weights' input size with their
            interpolation, which networks that run at one size only, such as ``maxvit_t``, need).

    Returns:
        A frozen :class:`Backbone` in eval mode.

    Raises:
        SpecError: unknown name (the message lists the valid ones).
        WeightsError: weights missing, unreadable or not fitting.

    Example:
        >>> bb = create_backbone("alexnet", weights=None)  # doctest: +SKIP
        >>> bb.canonical_taps  # doctest: +SKIP
        ['conv1', 'conv2', 'conv3', 'conv4', 'conv5']
    """
    from percept.registry import get_registry

    entry = get_registry().get("backbone", name)
    try:
        backbone = entry.factory(weights=weights, **kwargs)
    except (PerceptError, TypeError):
        raise  # already a clear error (or a wrong keyword argument from the caller)
    except Exception as exc:
        # A plugin's bug (e.g. taps declared on modules that do not exist): name the plugin.
        raise RegistrationError(
            f"backbone {name!r} of plugin {entry.plugin!r} failed to build: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(backbone, Backbone):
        raise RegistrationError(
            f"backbone factory {name!r} of plugin {entry.plugin!r} returned {type(backbone).__name__}, "
            "expected a percept.backbones.Backbone"
        )
    return backbone.eval().requires_grad_(False)
