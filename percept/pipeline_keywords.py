"""One place that turns a spec and keywords into a :class:`~percept.pipeline.Pipeline`.

:class:`~percept.PerceptualLoss`, :class:`~percept.PerceptualMetric` and :func:`~percept.functional.get_pipeline`
(behind :func:`~percept.perceptual_distance`) all build their pipeline here, so a keyword means the same and a bad
one gets the same error in each:

1. :func:`route_keywords` takes out the keywords another receiver reads (torchmetrics' options for the metric) and
   adds those given as a mapping (``pipeline_kwargs=``), refusing one given both ways;
2. :func:`pipeline_from_keywords` calls :func:`~percept.pipeline.build_pipeline` with the rest: the common options
   (``weights=``, ``input_range=``, ``check_inputs=``, ``layer_weights=``), overrides (``readout=``, ``distance=``,
   ``ensemble=``) and the options of a preset or backbone. A keyword nobody takes raises ``TypeError`` naming it
   and, where the caller routes keywords, saying where each kind goes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from percept.pipeline import Pipeline, build_pipeline
from percept.spec import Spec

# The options every constructor names in its signature; any other keyword is an override or a preset/backbone option.
COMMON_OPTIONS = frozenset({"weights", "input_range", "check_inputs", "layer_weights"})


def route_keywords(
    keywords: Mapping[str, Any],
    elsewhere: Collection[str] = (),
    pipeline_kwargs: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``keywords`` into those another receiver reads and those for the pipeline.

    Args:
        keywords: the ``**kwargs`` a constructor received.
        elsewhere: the names that go to another receiver (``METRIC_OPTIONS`` to ``torchmetrics.Metric``).
        pipeline_kwargs: more pipeline keywords given as a mapping; a name both here and in ``keywords`` is refused.

    Returns:
        ``(for_elsewhere, for_pipeline)``, two new dicts.

    Raises:
        TypeError: a name given both as a keyword and in ``pipeline_kwargs``.

    Example:
        >>> route_keywords({"sync_on_compute": False, "resize": True}, {"sync_on_compute"}, {"distance": "l1"})
        ({'sync_on_compute': False}, {'resize': True, 'distance': 'l1'})
    """
    taken = {k: v for k, v in keywords.items() if k in elsewhere}
    options = {k: v for k, v in keywords.items() if k not in elsewhere}
    extra = dict(pipeline_kwargs or {})
    twice = options.keys() & extra.keys()
    if twice:
        raise TypeError(f"{', '.join(sorted(twice))} given both as a keyword and in pipeline_kwargs")
    options.update(extra)
    return taken, options


def pipeline_from_keywords(spec: str | Spec, keywords: Mapping[str, Any], *, routing: str | None = None) -> Pipeline:
    """``build_pipeline(spec, **keywords)``; a ``TypeError`` about an option also says how ``routing`` routes them.

    Args:
        spec: a spec string or :class:`~percept.spec.Spec` (see :func:`percept.parse_spec`).
        keywords: everything :func:`~percept.pipeline.build_pipeline` takes besides the spec.
        routing: a sentence saying where the caller sends each kind of keyword, added to the error a keyword that
            nobody takes raises (when any keyword besides :data:`COMMON_OPTIONS` was given); ``None`` adds nothing.

    Returns:
        The built :class:`~percept.pipeline.Pipeline`.

    Raises:
        TypeError: a keyword that neither ``build_pipeline`` nor the preset or backbone takes.
        percept.SpecError: a spec or an override that cannot be built (as ``build_pipeline`` raises it).

    Example:
        >>> pipeline_from_keywords("pixel:pixel/raw/l2", {"check_inputs": False}).spec
        'pixel:pixel/raw/l2'
        >>> pipeline_from_keywords("pixel", {"colour": 1}, routing="Keywords go to the backbone")
        Traceback (most recent call last):
        ...
        TypeError: unexpected keyword arguments ['colour'] ... Keywords go to the backbone
    """
    try:
        return build_pipeline(spec, **keywords)
    except TypeError as exc:
        if routing is None or not keywords.keys() - COMMON_OPTIONS:
            raise
        raise TypeError(f"{exc}. {routing}") from exc
