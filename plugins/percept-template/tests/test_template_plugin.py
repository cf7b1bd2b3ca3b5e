"""percept-template: registered through its entry point, meets percept's contract, computes the formula."""

from __future__ import annotations

import warnings

import pytest
import torch
from percept_template import Charbonnier

import percept
from percept.plugin import InputError, WeightsError, check_distance, check_pipeline, check_plugin, get_registry


def test_registered_through_the_entry_point():
    assert get_registry().get("distance", "charbonnier").plugin == "template"
    info = next(p for p in get_registry().plugins() if p.name == "template")
    assert (info.distribution, info.version, info.registered) == (
        "percept-template",
        "0.1.0",
        {"distance": ["charbonnier"], "preset": ["template-example-heads"]},
    )


def test_meets_the_contract():
    report = check_distance("charbonnier")
    assert {"identity", "symmetry", "batch independence", "gradients", "bad input"} <= set(report.passed)
    # Its preset holds learned heads for recorded weights and refuses others, so it is checked as built with
    # those weights rather than with the random ones check_plugin gives presets.
    assert [r.name for r in check_plugin("template", presets=False)] == ["charbonnier"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", percept.RandomWeightsWarning)
        report = check_pipeline(percept.build_pipeline("template-example-heads"))
    assert {"identity", "gradients", "bad input"} <= set(report.passed)


def test_formula():
    a = torch.zeros(2, 3, 4, 4)
    b = torch.full((2, 3, 4, 4), 0.5)
    expected = torch.sqrt(torch.tensor(0.25 + 1e-6)) - 1e-3
    torch.testing.assert_close(Charbonnier()(a, b), expected.expand(2))
    assert torch.equal(Charbonnier()(b, b.clone()), torch.zeros(2))


@pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")
def test_in_a_spec_string():
    loss = percept.PerceptualLoss("alexnet:conv1,conv2/raw/charbonnier", weights=None)
    x = torch.rand(2, 3, 48, 48, requires_grad=True)
    value = loss(x, torch.rand(2, 3, 48, 48))
    value.backward()
    assert value > 0 and torch.isfinite(x.grad).all()


def test_bad_input():
    with pytest.raises(InputError, match=r"same shape, got \(1, 2, 3, 3\) and \(1, 2, 3\)"):
        Charbonnier()(torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3))
    with pytest.raises(InputError, match="eps must be a number > 0, got 0"):
        Charbonnier(eps=0)


@pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")
def test_ships_learned_heads_as_a_preset():
    from percept_template.plugin import EXAMPLE_HEADS

    assert get_registry().get("preset", "template-example-heads").plugin == "template"
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    loss = percept.PerceptualLoss("template-example-heads", reduction="none")
    same = percept.PerceptualLoss("learned-heads", file=str(EXAMPLE_HEADS), reduction="none")
    torch.testing.assert_close(loss(x, y), same(x, y))
    assert (loss(x, y) > 0).all() and "weights=random,seed=0," in loss.signature
    with pytest.raises(WeightsError, match="learned on alexnet weights"):
        percept.PerceptualLoss("template-example-heads", weights="random:1")
