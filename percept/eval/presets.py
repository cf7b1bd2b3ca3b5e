"""Presets for the metrics the research toolkit writes: ``map-selection``, ``channel-weights``, ``learned-heads``.

Both are registered through percept's own entry point ``toolkit`` (:mod:`percept.eval.plugin`),
which loads even with ``PERCEPT_DISABLE_PLUGIN_AUTOLOAD`` set; this module imports neither pandas nor
scipy (the loaders are imported when a preset is built), so a file written by ``percept select`` or
``percept finetune`` loads by name, with no registration step:

    >>> from percept import PerceptualLoss, PerceptualMetric
    >>> loss = PerceptualLoss("map-selection", selection="select-out/selection.json")  # doctest: +SKIP
    >>> kwargs = {"file": "ft-out/channel_weights.json"}
    >>> metric = PerceptualMetric("channel-weights", pipeline_kwargs=kwargs)  # doctest: +SKIP
    >>> loss = PerceptualLoss("learned-heads", file="learned/heads.json")  # doctest: +SKIP

Backbone weights: those recorded in the file (the ones the maps were selected or the channel
weights fitted with). ``weights="imagenet"``, the default of ``PerceptualLoss`` and
``build_pipeline``, means "as recorded"; any other value (a tag, a path, ``None``) overrides it.
"""

from __future__ import annotations

from collections.abc import Callable

from percept.errors import SpecError
from percept.hookspecs import hookimpl


def _recorded(weights):
    return "from-file" if isinstance(weights, str) and weights == "imagenet" else weights


def _check_options(preset: str, option: str, value, kwargs: dict, writer: str) -> None:
    """The one option a file preset needs (``selection=`` or ``file=``), and no other."""
    if value is None:
        raise SpecError(f"preset {preset!r} needs {option}=<{writer}>, got no {option}=")
    if kwargs:
        raise TypeError(f"unexpected options {sorted(kwargs)} for preset {preset!r} (expected {option}=, weights=)")


def _map_selection(weights="from-file", input_range=(0.0, 1.0), selection=None, **kwargs):
    _check_options("map-selection", "selection", selection, kwargs, "selection.json written by percept select")
    from percept.eval.select import selection_pipeline

    return selection_pipeline(selection, weights=_recorded(weights), input_range=input_range)


def _channel_weights(weights="from-file", input_range=(0.0, 1.0), file=None, **kwargs):
    _check_options("channel-weights", "file", file, kwargs, "channel_weights.json written by percept finetune")
    from percept.eval.finetune import finetuned_pipeline

    return finetuned_pipeline(file, weights=_recorded(weights), input_range=input_range)


def _learned_heads(weights="from-file", input_range=(0.0, 1.0), file=None, **kwargs):
    _check_options("learned-heads", "file", file, kwargs, "heads.json written by percept learn")
    from percept.eval.learn.files import heads_pipeline

    return heads_pipeline(file, weights=_recorded(weights), input_range=input_range)


@hookimpl
def register_presets(register: Callable[..., None]) -> None:
    """Register ``map-selection``, ``channel-weights`` and ``learned-heads`` (the ``register_presets`` hook)."""
    register(
        "map-selection",
        _map_selection,
        description="1 - mean SSIM over the feature maps chosen by percept select (selection=FILE)",
    )
    register(
        "channel-weights",
        _channel_weights,
        description="LPIPS-like metric with the channel weights learned by percept finetune (file=FILE)",
    )
    register(
        "learned-heads",
        _learned_heads,
        description="LPIPS heads learned on 2AFC judgements by percept learn, on any backbone (file=heads.json)",
    )
