"""The public shape probe (percept.backbones.probe): typed, equal to what the taps came from and to a real run."""

from __future__ import annotations

import math
import pickle
import warnings

import pytest
import torch
from torch import nn

import percept
from percept import InputError
from percept.backbones import StageShape, stage_shapes


def _build(name: str) -> percept.Backbone:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights
        return percept.create_backbone(name, weights=None)


@pytest.fixture(scope="module")
def alexnet() -> percept.Backbone:
    return _build("alexnet")


# A plain stage list (alexnet), a to_map pyramid (kornia), a timm model run through forward_intermediates,
# and an embedding that declares its shapes without a run (it overrides the tracing hook).
NAMES = ["alexnet", "laplacian_pyramid", "timm.vit_tiny_patch16_224", "embed.timm.vit_tiny_patch16_224"]


@pytest.mark.parametrize("name", NAMES)
def test_stage_shapes_are_typed_and_equal_the_traced_shapes(name):
    if name.startswith(("timm.", "embed.")):
        pytest.importorskip("timm")
    if name == "laplacian_pyramid":
        pytest.importorskip("kornia")
    backbone = _build(name)
    shapes = stage_shapes(backbone)
    assert len(shapes) == len(backbone.module_paths)
    assert all(type(s) is StageShape and type(s.channels) is int and type(s.reduction) is int for s in shapes)
    assert shapes == backbone._trace_shapes()  # the hook the taps were built from (a subclass may override it)
    assert shapes == backbone.stage_shapes()
    for info in backbone.feature_info:
        assert (info.channels, info.reduction) == shapes[info.index]


def test_stage_shapes_match_a_real_run(alexnet):
    """Traced without weights on the meta device, they are what a real pass at the input size gives."""
    size = 224  # alexnet has no input_size: shapes are traced at 224
    with torch.no_grad():
        maps = alexnet(torch.rand(1, 3, size, size), alexnet.module_paths)
    real = [(int(m.shape[1]), 2 ** round(math.log2(size / m.shape[-1]))) for m in maps.values()]
    assert stage_shapes(alexnet) == real


def test_a_stage_shape_unpacks_as_a_pair(alexnet):
    channels, reduction = stage_shapes(alexnet)[alexnet.tap_info("conv2").index]
    assert (channels, reduction) == (alexnet.tap_info("conv2").channels, alexnet.tap_info("conv2").reduction)
    assert StageShape(64, 4)._asdict() == {"channels": 64, "reduction": 4}


def test_shapes_survive_pickling_without_the_meta_copy(alexnet):
    alexnet.runs_at(64)  # builds the meta copy used for tracing
    clone = pickle.loads(pickle.dumps(alexnet))
    assert "_meta_stages" not in clone.__dict__
    assert stage_shapes(clone) == stage_shapes(alexnet)
    assert clone.min_size(["conv5"]) == alexnet.min_size(["conv5"])


def test_min_size_is_the_smallest_size_that_runs(alexnet):
    last = alexnet.tap_info("conv3").index
    smallest = alexnet.min_size(["conv3"])
    assert alexnet.runs_at(smallest, last) and not alexnet.runs_at(smallest - 1, last)


@pytest.mark.parametrize(
    ("bad", "hint"),
    [("alexnet", r"got str: build it first, create_backbone\('alexnet'\)"), (nn.Conv2d(3, 8, 3), "got Conv2d$")],
)
def test_anything_but_a_backbone_is_refused(bad, hint):
    with pytest.raises(InputError, match=f"stage_shapes needs a percept Backbone, {hint}"):
        stage_shapes(bad)


def test_a_pipeline_is_refused_with_the_way_to_its_backbone(alexnet):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = percept.build_pipeline("alexnet:conv1/raw/l2", weights=None)
    with pytest.raises(InputError, match=r"got Pipeline: pass its \.backbone"):
        stage_shapes(pipeline)
    assert stage_shapes(pipeline.backbone) == stage_shapes(alexnet)
