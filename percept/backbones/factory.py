"""``create_backbone``: the timm-style factory over every registered backbone.

Random weights are always seeded, so that they can be made again: ``weights="random:SEED"`` draws them
after ``torch.manual_seed(SEED)`` (torch's global generator is left as it was), and ``weights=None``
(or ``"random"``) first draws a seed from torch's global generator, so ``torch.manual_seed`` upstream
still decides them. Either way the backbone records the seed (``backbone.random_seed``), and
:func:`reproducible_weights` gives the ``"random:SEED"`` text that result files record to rebuild it.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from percept.backbones.base import Backbone
from percept.errors import PerceptError, RegistrationError, WeightsError

RANDOM = "random"
_RANDOM_SEED = re.compile(r"random:(\d+)")
SEED_BOUND = 2**31 - 1  # seeds drawn for weights=None lie in [0, SEED_BOUND)


def random_weights_seed(weights: Any) -> int | None:
    """The seed a ``weights`` argument asks random weights to be drawn with; ``None`` for weights that are not
    random with a stated seed (a tag, a file, ``None``).

    Raises:
        WeightsError: a ``"random:..."`` text whose seed is not a non-negative integer.

    Example:
        >>> random_weights_seed("random:7"), random_weights_seed(None), random_weights_seed("imagenet")
        (7, None, None)
        >>> random_weights_seed("random:x")
        Traceback (most recent call last):
        ...
        percept.errors.WeightsError: weights 'random:x': expected 'random:SEED' with SEED an integer >= 0 \
(e.g. 'random:0'), or None / 'random' for a seed drawn from torch's generator
    """
    if not isinstance(weights, str) or not weights.startswith(RANDOM + ":"):
        return None
    match = _RANDOM_SEED.fullmatch(weights.strip())
    if match is None:
        raise WeightsError(
            f"weights {weights!r}: expected 'random:SEED' with SEED an integer >= 0 (e.g. 'random:0'), or None / "
            "'random' for a seed drawn from torch's generator"
        )
    return int(match.group(1))


def is_random_weights(weights: Any) -> bool:
    """Whether a ``weights`` argument asks for random weights (``None``, ``"random"`` or ``"random:SEED"``).

    Example:
        >>> is_random_weights(None), is_random_weights("random:3"), is_random_weights("imagenet")
        (True, True, False)
    """
    return weights is None or weights == RANDOM or random_weights_seed(weights) is not None


def reproducible_weights(backbone: Any, weights: Any) -> Any:
    """What a result file records as the weights of ``backbone``, built from ``weights``: ``"random:SEED"`` for
    a backbone with random weights (the seed :func:`create_backbone` drew them with, which rebuilds them),
    else ``weights`` as given.

    Example:
        >>> bb = create_backbone("alexnet", weights="random:5")  # doctest: +SKIP
        >>> reproducible_weights(bb, None)  # doctest: +SKIP
        'random:5'
    """
    seed = getattr(backbone, "random_seed", None)
    return weights if seed is None else f"{RANDOM}:{seed}"


def create_backbone(name: str, weights="imagenet", **kwargs) -> Backbone:
    """Build the registered backbone ``name``.

    Args:
        name: a registered backbone (``percept list backbones``), e.g. ``"vgg16"``.
        weights: ``"imagenet"`` (default), another tag the backbone knows, a path to a local
            state_dict file, or random weights (with a warning): ``"random:SEED"`` (drawn after
            ``torch.manual_seed(SEED)``), or ``None`` / ``"random"`` (the seed drawn from torch's global
            generator; recorded as ``backbone.random_seed``).
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
    seed = None
    if is_random_weights(weights):
        seed = random_weights_seed(weights)
        if seed is None:  # None or "random": a seed from torch's generator, so torch.manual_seed decides it
            seed = int(torch.randint(0, SEED_BOUND, (1,), device="cpu").item())  # on the CPU under torch.device("meta")
    try:
        if seed is None:
            backbone = entry.factory(weights=weights, **kwargs)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                backbone = entry.factory(weights=None, **kwargs)
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
    backbone.random_seed = seed
    return backbone.eval().requires_grad_(False)
