"""The timm plugin: names resolved through the ``timm`` prefix entry, taps against timm's own features,
the model's input convention, weights from ``$PERCEPT_WEIGHTS_DIR`` and the offline error. No downloads."""

from __future__ import annotations

import pytest
import torch
from conftest import no_random_warning

from percept import SpecError, WeightsError, build_pipeline, create_backbone, list_backbones, parse_spec
from percept.registry import get_registry

timm = pytest.importorskip("timm")


def random(name: str):
    with no_random_warning():
        return create_backbone(name, weights=None)


@pytest.fixture(scope="module")
def resnet10t():
    return random("timm.resnet10t")


def test_prefix_entry_serves_any_timm_name_without_listing_them():
    registry = get_registry()
    assert registry.has("backbone", "timm.resnet14t")  # not registered by name
    entry = registry.get("backbone", "timm.resnet14t.c3_in1k")
    assert entry.name == "timm.resnet14t.c3_in1k" and entry.plugin == "percept.builtin.timm"
    assert not any(n.startswith("timm.resnet14t") for n in list_backbones())
    assert parse_spec("timm.resnet14t.c3_in1k:stages_1/unit/l2").backbone == "timm.resnet14t.c3_in1k"
    assert "timm.vit_small_patch16_224.dino" in list_backbones("timm.*")


def test_unknown_model_and_tag_fail_with_closest_names():
    with pytest.raises(SpecError, match=r"unknown timm model 'resnet5'.*Did you mean"):
        create_backbone("timm.resnet5", weights=None)
    with pytest.raises(SpecError, match=r"unknown pretrained tag 'a9_in1k'.*a1_in1k"):
        create_backbone("timm.resnet50.a9_in1k", weights=None)


def test_cnn_taps_are_timm_features_only(resnet10t):
    reference = timm.create_model("resnet10t", pretrained=False, features_only=True).eval()
    reference.load_state_dict(resnet10t.model.state_dict())
    x = torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        ours = resnet10t(x)
        theirs = reference(resnet10t.preprocess(x))
    assert resnet10t.canonical_taps == [f"stages_{i}" for i in range(5)]
    canonical = [resnet10t.tap_info(t) for t in resnet10t.canonical_taps]
    assert [t.channels for t in canonical] == reference.feature_info.channels()
    assert [t.reduction for t in canonical] == reference.feature_info.reduction()
    for got, expected in zip(ours.values(), theirs, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_truncation_stops_at_the_deepest_tap(resnet10t):
    ran = []
    hooks = [m.register_forward_hook(lambda *_, p=p: ran.append(p)) for p, m in resnet10t._stages]
    try:
        with torch.no_grad():
            resnet10t(torch.rand(1, 3, 32, 32), ["stages_1"])
    finally:
        for h in hooks:
            h.remove()
    # layer1 runs block by block (its blocks are taps too); nothing of layer2 runs.
    assert ran[-1].startswith("layer1") and not any(p.startswith("layer2") for p in ran)


@pytest.fixture(scope="module")
def vit():
    return random("timm.vit_tiny_patch16_224")


def test_vit_tokens_become_maps_equal_to_forward_intermediates(vit):
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        ours = vit(x, ["stages_3", "stages_11"])
        theirs = vit.model.forward_intermediates(
            vit.preprocess(x), indices=[3, 11], norm=False, output_fmt="NCHW", intermediates_only=True
        )
    assert ours["stages_3"].shape == (1, 192, 14, 14)
    for got, expected in zip(ours.values(), theirs, strict=True):
        torch.testing.assert_close(got, expected)


def test_vit_runs_any_size_and_honours_its_mean_std(vit):
    # AugReg ViTs are trained on inputs normalised with mean = std = 0.5, not ImageNet's statistics.
    assert vit.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    with torch.no_grad():
        out = vit(torch.rand(1, 3, 40, 56), ["stages_0"])["stages_0"]
    assert out.shape == (1, 192, 3, 4)  # padded to whole 16-pixel patches


def test_convnext_pipeline_end_to_end():
    with no_random_warning():
        p = build_pipeline("timm.convnext_atto:stages_0,stages_1/unit/l2", weights=None)
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    d = p(x, torch.rand(2, 3, 64, 64))
    d.sum().backward()
    assert d.shape == (2,) and torch.isfinite(x.grad).all()


def test_weights_from_percept_weights_dir(tmp_path, monkeypatch, resnet10t):
    from safetensors.torch import save_file

    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in resnet10t.model.state_dict().items()}
    full = timm.create_model("resnet10t", pretrained=False).state_dict()
    full.update(state)
    save_file({k: v.contiguous() for k, v in full.items()}, str(tmp_path / "resnet10t.c3_in1k.safetensors"))
    monkeypatch.setenv("PERCEPT_WEIGHTS_DIR", str(tmp_path))
    bb = create_backbone("timm.resnet10t", weights="imagenet")
    torch.testing.assert_close(bb.model.state_dict()["conv1.0.weight"], state["conv1.0.weight"])
    assert bb.pretrained_cfg.filename == "resnet10t.c3_in1k.safetensors"
    assert bb.pretrained_cfg.license


def test_offline_without_file_names_the_file_and_the_folder(tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PERCEPT_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _no_network)
    with pytest.raises(WeightsError, match=r"resnet10t\.c3_in1k.*huggingface\.co/timm/resnet10t\.c3_in1k") as err:
        create_backbone("timm.resnet10t", weights="imagenet")
    assert str(tmp_path) in str(err.value)


def _no_network(*args, **kwargs):
    raise OSError("no network in tests")
