"""Torchvision backbones: declared taps match what runs, truncation, input handling."""

from __future__ import annotations

import warnings

import pytest
import torch

from percept import InputError, RandomWeightsWarning, SpecError, create_backbone, list_backbones
from percept.builtin._torchvision import all_families


def random_backbone(name: str, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return create_backbone(name, weights=None, **kwargs)


@pytest.fixture(scope="module")
def vgg16():
    return random_backbone("vgg16")


def test_every_family_is_registered():
    assert set(all_families()) <= set(list_backbones())


# The first families; tests/test_backbone_contract.py runs the full contract over every registered backbone.
CORE = ("alexnet", "mobilenet_v2", "resnet18", "resnet34", "resnet50", "squeezenet1_1", "vgg11", "vgg11_bn", "vgg16")


@pytest.mark.parametrize("name", CORE)
def test_declared_taps_are_produced(name):
    backbone = random_backbone(name)
    size = max(64, backbone.min_size(backbone.tap_names))
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        out = backbone(x, backbone.tap_names)
    assert list(out) == backbone.tap_names
    for info in backbone.feature_info:
        feat = out[info.name]
        assert feat.shape[:2] == (2, info.channels), info
        # reduction is the nominal stride; valid convolutions may lose a pixel or two
        assert abs(feat.shape[-1] - size / info.reduction) <= 2, (info, feat.shape)
    assert backbone.canonical_taps, name
    assert not any(p.requires_grad for p in backbone.parameters())


def test_vgg16_names_match_lpips_taps(vgg16):
    modules = {t: vgg16.tap_info(t).module for t in ("conv1", "conv2", "conv3", "conv4", "conv5")}
    assert modules == {
        "conv1": "features.3",
        "conv2": "features.8",
        "conv3": "features.15",
        "conv4": "features.22",
        "conv5": "features.29",
    }
    assert vgg16.tap_info("relu3_1").module == "features.11"
    assert vgg16.tap_info("pool2").module == "features.9"
    assert vgg16.tap_info("features.15").channels == 256
    assert vgg16.canonical_taps == ["conv1", "conv2", "conv3", "conv4", "conv5"]


def test_alexnet_and_squeezenet_canonical_taps():
    alex = random_backbone("alexnet")
    assert [alex.tap_info(t).module for t in alex.canonical_taps] == [f"features.{i}" for i in (1, 4, 7, 9, 11)]
    squeeze = random_backbone("squeezenet1_1")
    assert [squeeze.tap_info(t).channels for t in squeeze.canonical_taps] == [64, 128, 256, 384, 384, 512, 512]


def test_pass_stops_after_deepest_tap(vgg16):
    ran = []
    hooks = [m.register_forward_hook(lambda mod, i, o, p=p: ran.append(p)) for p, m in vgg16._stages]
    try:
        with torch.no_grad():
            vgg16(torch.rand(1, 3, 32, 32), ["conv2"])
    finally:
        for h in hooks:
            h.remove()
    assert ran[-1] == "features.8"
    assert len(ran) == 9


def test_pre_activation_tap_is_not_overwritten_by_inplace_relu(vgg16):
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = vgg16(x, ["conv1_1", "relu1_1"])
    assert (out["conv1_1"] < 0).any()
    torch.testing.assert_close(out["relu1_1"], out["conv1_1"].clamp(min=0))


def test_unknown_tap_lists_valid_names(vgg16):
    with pytest.raises(
        SpecError, match=r"unknown tap 'conv33' of backbone 'vgg16'\. Did you mean 'conv3'.*relu3_1.*features\.11"
    ):
        vgg16.tap_info("conv33")


def test_grey_input_equals_repeated_colour(vgg16):
    grey = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        a = vgg16(grey, ["conv2"])["conv2"]
        b = vgg16(grey.expand(-1, 3, -1, -1), ["conv2"])["conv2"]
    torch.testing.assert_close(a, b)


def test_input_range_minus_one_one(vgg16):
    other = random_backbone("vgg16", input_range=(-1, 1))
    other.load_state_dict(vgg16.state_dict())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(vgg16(x, ["conv2"])["conv2"], other(x * 2 - 1, ["conv2"])["conv2"])


def test_min_size_is_declared_and_enforced():
    alex = random_backbone("alexnet")
    size = alex.min_size(["conv5"])
    assert 1 < size < 100
    with torch.no_grad():
        alex(torch.rand(1, 3, size, size), ["conv5"])
    with pytest.raises(InputError, match=f"at least {size}x{size}"):
        alex.check_input(torch.rand(1, 3, size - 1, size + 5), ["conv5"])


def test_stays_in_eval_mode(vgg16):
    module = torch.nn.Sequential(vgg16)
    module.train()
    assert not vgg16.training and not any(m.training for m in vgg16.modules())


def test_deterministic(vgg16):
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a = vgg16(x, ["conv3"])["conv3"]
        b = vgg16(x, ["conv3"])["conv3"]
    assert torch.equal(a, b)


def test_random_weights_warn():
    with pytest.warns(RandomWeightsWarning, match="random weights"):
        create_backbone("alexnet", weights=None)


def test_classifier_heads_are_dropped(vgg16):
    assert sum(p.numel() for p in vgg16.parameters()) < 20_000_000  # VGG16 features only (14.7M)
