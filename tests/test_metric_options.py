"""PerceptualMetric takes preset and backbone options as keywords, as PerceptualLoss does.

torchmetrics' own options (``sync_on_compute``, ...) still reach ``torchmetrics.Metric``; everything
else goes to the pipeline, as keywords or in ``pipeline_kwargs=`` (issue 19, item 5).
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from percept import PerceptualLoss, PerceptualMetric, RandomWeightsWarning
from percept.eval.select import FORMAT
from percept.metric import METRIC_OPTIONS


@pytest.fixture
def selection(tmp_path):
    """A hand-written map selection over random AlexNet maps (what ``percept select`` writes)."""
    path = tmp_path / "selection.json"
    data = {"format": FORMAT, "backbone": "alexnet", "weights": None, "maps": {"relu1": [0, 3], "relu2": [1]}}
    path.write_text(json.dumps(data))
    return str(path)


def quiet(build):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return build()


def test_preset_option_as_keyword_matches_the_loss(selection):
    metric = quiet(lambda: PerceptualMetric("map-selection", weights=None, selection=selection, sync_on_compute=False))
    loss = quiet(lambda: PerceptualLoss("map-selection", weights=None, selection=selection, reduction="none"))
    loss.pipeline.backbone.load_state_dict(metric.pipeline.backbone.state_dict())
    assert metric.spec == loss.spec == "map-selection(alexnet, 3 maps)"
    assert metric.sync_on_compute is False  # torchmetrics got its option
    x, y = torch.rand(2, 3, 3, 32, 32, generator=torch.Generator().manual_seed(0)).unbind(0)
    metric.update(x, y)
    assert torch.allclose(metric.compute(), loss(x, y).mean())


def test_pipeline_kwargs_still_work_and_a_keyword_given_twice_is_refused(selection):
    metric = quiet(lambda: PerceptualMetric("map-selection", weights=None, pipeline_kwargs={"selection": selection}))
    assert metric.spec == "map-selection(alexnet, 3 maps)"
    with pytest.raises(TypeError, match="selection given both as a keyword and in pipeline_kwargs"):
        PerceptualMetric("map-selection", selection=selection, pipeline_kwargs={"selection": selection})


def test_spec_overrides_and_every_torchmetrics_option_are_routed():
    options = {
        "compute_on_cpu": True,
        "dist_sync_on_step": True,
        "process_group": None,
        "dist_sync_fn": None,
        "sync_on_compute": False,
        "compute_with_cache": False,
    }
    assert set(options) | {"distributed_available_fn"} == METRIC_OPTIONS
    metric = quiet(lambda: PerceptualMetric("alexnet:relu1", weights=None, readout="unit", distance="l2", **options))
    assert metric.spec == "alexnet:relu1/unit/l2"
    for name, value in options.items():
        assert getattr(metric, name) == value, name
    with pytest.raises(ValueError, match="sync_on_compute"):  # torchmetrics still checks its own options
        quiet(lambda: PerceptualMetric("alexnet:relu1", weights=None, sync_on_compute="no"))


def test_unknown_keyword_says_where_keywords_go(selection):
    with pytest.raises(TypeError, match=r"unexpected options \['colour'\].*sync_on_compute to torchmetrics.Metric"):
        quiet(lambda: PerceptualMetric("map-selection", weights=None, selection=selection, colour=1))
    with pytest.raises(TypeError, match="not options of backbone 'alexnet'.*every other keyword to the spec's"):
        quiet(lambda: PerceptualMetric("alexnet:relu1", weights=None, colour=1))
