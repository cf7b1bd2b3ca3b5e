"""Backbone breadth: timm's transformer families (Swin's channels-last maps, EVA's rotary embeddings, fixed-size
models), blocks inside stages as taps, the model's input size and interpolation (``resize``), and torchvision's
fixed-size MaxViT. Random weights only; no downloads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import no_random_warning
from torch import nn

from percept import InputError, PerceptualLoss, create_backbone
from percept.backbones.base import check_interpolation, resize_images
from percept.testing import check_backbone

timm = pytest.importorskip("timm")


def random(name: str, **kwargs):
    with no_random_warning():
        return create_backbone(name, weights=None, **kwargs)


# -- resize: the model's own input size and interpolation ------------------------------------------


def test_resize_uses_the_configured_size_and_interpolation_and_passes_gradients():
    bb = random("timm.resnet10t", resize=True)
    cfg = timm.models.get_pretrained_cfg("resnet10t")
    assert bb.input_size == tuple(cfg.input_size[-2:]) == (176, 176)
    assert bb.interpolation == cfg.interpolation == "bicubic"
    assert bb.min_size() == 1  # every size runs: it is resized first

    x = torch.rand(2, 3, 64, 80, requires_grad=True)
    out = bb(x, ["stages_1"])["stages_1"]
    assert out.shape == (2, 64, 44, 44)  # a map of the 176x176 image
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

    resized = F.interpolate(x.detach(), size=(176, 176), mode="bicubic", align_corners=False, antialias=True)
    bilinear = F.interpolate(x.detach(), size=(176, 176), mode="bilinear", align_corners=False, antialias=True)
    bb.resize = False
    with torch.no_grad():
        expected = bb(resized, ["stages_1"])["stages_1"]
        other = bb(bilinear, ["stages_1"])["stages_1"]
    torch.testing.assert_close(out.detach(), expected)
    assert not torch.allclose(out.detach(), other)


def test_resize_is_off_by_default_and_leaves_the_native_size_untouched():
    bb = random("timm.resnet10t")
    assert not bb.resize and not bb.fixed_size
    assert bb(torch.rand(1, 3, 64, 64), ["stages_1"])["stages_1"].shape == (1, 64, 16, 16)
    x = torch.rand(1, 3, 176, 176)
    assert resize_images(x, (176, 176), "bicubic") is x


def test_resize_reaches_the_backbone_through_perceptual_loss():
    with no_random_warning():
        loss = PerceptualLoss("timm.resnet10t:stages_1", weights=None, resize=True)
        assert loss.pipeline.backbone.resize
        x = torch.rand(2, 3, 40, 40, requires_grad=True)
        loss(x, torch.rand(2, 3, 40, 40)).backward()
        assert torch.isfinite(x.grad).all()
        with pytest.raises(TypeError, match=r"unexpected keyword arguments \['resize_to'\].*timm.resnet10t"):
            PerceptualLoss("timm.resnet10t:stages_1", weights=None, resize_to=224)


def test_interpolation_names():
    assert [check_interpolation(m) for m in ("BICUBIC", "bilinear", "lanczos", "box")] == [
        "bicubic",
        "bilinear",
        "bicubic",
        "area",
    ]
    with pytest.raises(InputError, match=r"interpolation must be one of bicubic, bilinear.*got 'spline'"):
        check_interpolation("spline")


# -- torchvision: fixed-size MaxViT, LR-ASPP -------------------------------------------------------


def test_maxvit_runs_at_224_only_and_says_how_to_resize():
    bb = random("maxvit_t")
    assert bb.fixed_size and bb.input_size == (224, 224) and bb.min_size() == 224
    x = torch.rand(1, 3, 256, 256)
    with pytest.raises(InputError, match=r"'maxvit_t' runs at 224x224 only, got x of size 256x256.*resize=True"):
        bb.check_input(x)
    with pytest.raises(InputError, match=r"runs at 224x224 only"):
        bb(x, ["stem"])
    with pytest.raises(InputError, match=r"runs at 224x224 only, got x of size 100x100"):
        bb.check_input(torch.rand(1, 3, 100, 100))
    with pytest.raises(InputError, match=r"expected x of shape \(N, C, H, W\)"):
        bb.check_input(torch.rand(3, 224, 224))


@pytest.mark.slow
def test_maxvit_resized_on_request():
    bb = random("maxvit_t")
    x = torch.rand(1, 3, 256, 256)
    resized = random("maxvit_t", resize=True)
    assert resized.interpolation == "bicubic"  # torchvision's transforms for MaxViT's weights
    resized.load_state_dict(bb.state_dict())
    with torch.no_grad():
        out = resized(torch.rand(1, 3, 64, 96), ["stage1"])["stage1"]
        native = x[:, :, :224, :224]
        torch.testing.assert_close(resized(native, ["stem"])["stem"], bb(native, ["stem"])["stem"], rtol=0, atol=0)
    assert out.shape == (1, 64, 56, 56)


def test_lraspp_taps_its_dilated_trunk():
    bb = random("lraspp_mobilenet_v3_large")
    assert bb.canonical_taps == ["stage1", "stage2", "stage3", "stage4"]
    assert [t.reduction for t in bb.resolve_taps(None)] == [2, 4, 8, 16]  # the last stage is dilated
    assert bb.tap_info("stage4").channels == 960


# -- blocks inside stages --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def convnext():
    return random("timm.convnext_atto")


def test_blocks_inside_stages_are_taps_equal_to_the_blocks_outputs(convnext):
    assert convnext.tap_info("stages_2_block1").module == "stages_2.blocks.1"
    assert "stages_2_block0" in convnext.tap_names and "stages_0_block1" in convnext.tap_names
    block = convnext.model.get_submodule("stages_2.blocks.1")
    seen = []
    hook = block.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.rand(2, 3, 64, 64)
    try:
        with torch.no_grad():
            ours = convnext(x, ["stages_2_block1", "stages_2"])
            seen.clear()
            convnext.model(convnext.preprocess(x))
    finally:
        hook.remove()
    torch.testing.assert_close(ours["stages_2_block1"], seen[0], rtol=0, atol=0)
    last = len(convnext.model.get_submodule("stages_2.blocks")) - 1
    assert convnext.tap_info("stages_2").index == convnext.tap_info(f"stages_2_block{last}").index

    ran = []
    hooks = [m.register_forward_hook(lambda *_, p=p: ran.append(p)) for p, m in convnext._stages]
    try:
        with torch.no_grad():
            convnext(x[:1], ["stages_2_block0"])
    finally:
        for h in hooks:
            h.remove()
    assert ran[-1] == "stages_2.blocks.0"


class _Stage(nn.Module):
    def __init__(self, reshape: bool) -> None:
        super().__init__()
        self.downsample = nn.Conv2d(3, 3, 1)
        self.blocks = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())
        self.reshape = reshape

    def forward(self, x):
        x = self.downsample(x)
        return self.blocks(x.flip(-1)).flip(-1) if self.reshape else self.blocks(x)


def test_a_stage_whose_forward_does_more_than_run_its_blocks_stays_whole():
    from percept.builtin.timm_stages import expand_blocks, sequential_stages

    model = nn.ModuleDict({"plain": _Stage(False), "flipping": _Stage(True)})
    expand_blocks(model, 32)
    assert model._percept_expanded == {"plain"}
    paths = [p for p, _ in sequential_stages(model)]
    assert paths == ["plain.downsample", "plain.blocks.0", "plain.blocks.1", "flipping"]


# -- transformer families --------------------------------------------------------------------------


@pytest.mark.slow
def test_swin_maps_are_timm_features_permuted_to_nchw_at_any_size():
    bb = random("timm.swin_tiny_patch4_window7_224")
    assert not bb.fixed_size  # built with dynamic_img_size: pads to whole windows
    reference = timm.create_model(
        "swin_tiny_patch4_window7_224", pretrained=False, features_only=True, dynamic_img_size=True
    ).eval()
    reference.load_state_dict(bb.model.state_dict())
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        ours = bb(x)
        theirs = reference(bb.preprocess(x))
    shapes = [tuple(v.shape) for v in ours.values()]
    assert shapes == [(1, 96, 24, 32), (1, 192, 12, 16), (1, 384, 6, 8), (1, 768, 3, 4)]
    for got, expected in zip(ours.values(), theirs, strict=True):
        torch.testing.assert_close(got, expected.permute(0, 3, 1, 2), rtol=0, atol=0)
    assert bb.tap_info("stages_2_block5").module == "layers_2.blocks.5"
    check_backbone(bb)


@pytest.mark.slow
def test_eva_runs_through_forward_intermediates_and_stops_early():
    bb = random("timm.eva02_tiny_patch14_224")
    assert type(bb).__name__ == "IntermediatesBackbone" and not bb.fixed_size
    assert bb.canonical_taps == [f"stages_{i}" for i in range(12)]
    reference = timm.create_model(
        "eva02_tiny_patch14_224", pretrained=False, dynamic_img_size=True, dynamic_img_pad=True
    ).eval()
    missing, _ = reference.load_state_dict(bb.model.state_dict(), strict=False)
    assert all(k.startswith(("head", "fc_norm", "norm")) for k in missing)
    x = torch.rand(1, 3, 98, 126)  # not whole patches of 14: padded
    with torch.no_grad():
        ours = bb(x, ["stages_2", "stages_11"])
        theirs = reference.forward_intermediates(
            bb.preprocess(x), indices=[2, 11], norm=False, output_fmt="NCHW", intermediates_only=True
        )
    assert ours["stages_2"].shape == (1, 192, 7, 9)
    for got, expected in zip(ours.values(), theirs, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    check_backbone(bb)


@pytest.mark.slow
def test_fixed_size_timm_model_is_detected_refused_and_resized_on_request():
    bb = random("timm.levit_128s")
    assert bb.fixed_size and bb.min_size() == 224
    with pytest.raises(InputError, match=r"'timm.levit_128s' runs at 224x224 only, got x of size 160x160.*resize=True"):
        bb.check_input(torch.rand(1, 3, 160, 160))
    check_backbone(bb)

    resized = random("timm.levit_128s", resize=True)
    assert resized.min_size() == 1
    with torch.no_grad():
        assert resized(torch.rand(1, 3, 100, 100), ["stages_0"])["stages_0"].shape == (1, 128, 14, 14)
    check_backbone(resized, size=224)  # declared reductions hold at the size it runs at


def test_feature_info_naming_a_missing_module_falls_back_to_the_stage_container():
    from percept import SpecError
    from percept.builtin.timm_stages import intermediate_stages

    model = nn.Module()
    model.stages = nn.ModuleList([nn.Identity(), nn.ReLU()])
    model.feature_info = [{"module": "block.0"}, {"module": "block.1"}]  # as timm's MViTv2 declares them
    assert [(p, type(m).__name__) for p, m in intermediate_stages(model)] == [
        ("stages.0", "Identity"),
        ("stages.1", "ReLU"),
    ]
    model.blocks = nn.ModuleList([nn.Identity(), nn.Identity()])  # two candidates: "stages" and "blocks"
    with pytest.raises(SpecError, match=r"feature_info names module 'block.0', which it does not have"):
        intermediate_stages(model)
