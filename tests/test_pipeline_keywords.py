"""One constructor (percept.pipeline_keywords) builds the pipeline of the loss, the metric and the functional form.

Each of the three hands the same keywords to ``pipeline_from_keywords``; the metric first routes torchmetrics'
options away with ``route_keywords``; a bad keyword gets the same error everywhere, the metric's saying where its
keywords go (issue 24, item 5).
"""

from __future__ import annotations

import pytest
import torch

import percept.pipeline_keywords
from percept import PerceptualLoss, PerceptualMetric, perceptual_distance
from percept.functional import clear_cache, get_pipeline
from percept.metric import METRIC_OPTIONS
from percept.pipeline_keywords import COMMON_OPTIONS, pipeline_from_keywords, route_keywords

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")

SPEC = "pixel:pixel/raw/l2"


@pytest.fixture
def built(monkeypatch):
    """Every ``build_pipeline`` call that goes through the one constructor: (spec, keywords)."""
    calls: list[tuple[object, dict]] = []
    real = percept.pipeline_keywords.build_pipeline

    def spy(spec, **keywords):
        calls.append((spec, keywords))
        return real(spec, **keywords)

    monkeypatch.setattr(percept.pipeline_keywords, "build_pipeline", spy)
    clear_cache()
    yield calls
    clear_cache()


def test_loss_metric_and_functional_build_through_the_one_constructor(built) -> None:
    options = dict(weights=None, input_range=(-1.0, 1.0), check_inputs=False, layer_weights=None, distance="l1")
    loss = PerceptualLoss(SPEC, reduction="none", **options)
    metric = PerceptualMetric(SPEC, sync_on_compute=False, **options)
    x, y = torch.rand(2, 2, 3, 16, 16).unbind(0)
    distance = perceptual_distance(x, y, SPEC, **options)
    assert len(built) == 3
    assert all(spec == SPEC and keywords == options for spec, keywords in built), built
    assert loss.spec == metric.spec == get_pipeline(SPEC, x.device, **options).spec == "pixel:pixel/raw/l1"
    torch.testing.assert_close(distance, loss(x, y), rtol=0, atol=0)


def test_route_keywords_splits_merges_and_refuses_a_name_given_twice() -> None:
    taken, options = route_keywords({"sync_on_compute": False, "resize": True}, METRIC_OPTIONS, {"distance": "l1"})
    assert taken == {"sync_on_compute": False} and options == {"resize": True, "distance": "l1"}
    assert route_keywords({"resize": True}) == ({}, {"resize": True})
    with pytest.raises(TypeError, match="distance, resize given both as a keyword and in pipeline_kwargs"):
        route_keywords({"resize": True, "distance": "l2"}, (), {"resize": False, "distance": "l1"})


def test_a_bad_keyword_gets_one_error_everywhere_and_the_routing_only_from_the_metric() -> None:
    expected = r"unexpected keyword arguments \['colour'\] for spec 'pixel'.*not options of backbone 'pixel'"
    for build in (
        lambda: PerceptualLoss("pixel", colour=1),
        lambda: get_pipeline("pixel", colour=1),
        lambda: pipeline_from_keywords("pixel", {"colour": 1}),
    ):
        with pytest.raises(TypeError, match=expected) as info:
            build()
        assert "torchmetrics" not in str(info.value)
    with pytest.raises(TypeError, match=expected + r".*\. PerceptualMetric passes compute_on_cpu, .* to torchmetrics"):
        PerceptualMetric("pixel", colour=1)


def test_the_routing_sentence_needs_a_keyword_beyond_the_common_options(monkeypatch) -> None:
    """A ``TypeError`` raised with the common options only is not about routing: it goes on unchanged."""
    assert {"weights", "input_range", "check_inputs", "layer_weights"} == COMMON_OPTIONS

    def refuse(spec, **keywords):
        raise TypeError("refused")

    monkeypatch.setattr(percept.pipeline_keywords, "build_pipeline", refuse)
    with pytest.raises(TypeError, match=r"^refused$"):
        pipeline_from_keywords(SPEC, {"weights": None, "check_inputs": False}, routing="ROUTED")
    with pytest.raises(TypeError, match=r"^refused\. ROUTED$"):
        pipeline_from_keywords(SPEC, {"weights": None, "resize": True}, routing="ROUTED")
    with pytest.raises(TypeError, match=r"^refused$"):
        pipeline_from_keywords(SPEC, {"resize": True})
