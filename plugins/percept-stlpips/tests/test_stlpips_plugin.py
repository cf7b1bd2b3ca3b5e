"""percept-stlpips: parity with stlpips-pytorch's own ST-LPIPS, the backbones, weights and errors."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F
from percept_stlpips import BlurPool2d, create_stlpips, create_stlpips_backbone, stlpips_weight_file

import percept
from percept.plugin import SpecError, WeightsError, check_backbone, check_pipeline, get_registry

PARITY_TOL = 1e-5
NETS = ["alex", "vgg"]


@pytest.fixture(autouse=True)
def _eager_fused_op(monkeypatch):
    # The fused op compiles itself for large CPU inputs, once per new shape (seconds each); these tests
    # are about the metric, not the backend, so they run it eagerly.
    monkeypatch.setenv("PERCEPT_FUSED", "eager")


@pytest.fixture(scope="module", params=NETS)
def pair(request):
    """(net, percept's ST-LPIPS, stlpips-pytorch's ST-LPIPS) with the same packaged weights."""
    from stlpips_pytorch import stlpips

    reference = stlpips.LPIPS(net=request.param, variant="shift_tolerant", verbose=False).eval()
    return request.param, create_stlpips(request.param), reference


def smooth_images(n: int, size: tuple[int, int], seed: int, margin: int = 4) -> torch.Tensor:
    """Photo-like test images: bicubic upsampling of coarse noise, plus fine texture, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    h, w = size[0] + margin, size[1] + margin
    coarse = F.interpolate(torch.rand(n, 3, h // 8, w // 8, generator=g), size=(h, w), mode="bicubic")
    return (coarse + 0.1 * torch.rand(n, 3, h, w, generator=g)).clamp(0, 1)


def image_pairs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    big = smooth_images(2, (64, 64), seed=0)
    odd = smooth_images(1, (70, 67), seed=1)
    g = torch.Generator().manual_seed(2)
    base = big[..., :64, :64]
    return {
        "shift 1 px right": (base, big[..., :64, 1:65]),
        "shift 2 px down": (base, big[..., 2:66, :64]),
        "shift 1 px diagonal, odd size": (odd[..., :70, :67], odd[..., 1:71, 1:68]),
        "noise": (base, (base + 0.05 * torch.randn(base.shape, generator=g)).clamp(0, 1)),
        "unrelated": (base, smooth_images(2, (64, 64), seed=3)[..., :64, :64]),
    }


@pytest.mark.parametrize("case", list(image_pairs()))
def test_parity_with_stlpips_pytorch(pair, case):
    net, ours, reference = pair
    x, y = image_pairs()[case]
    with torch.no_grad():
        expected = reference(x, y, normalize=True).flatten()
        got = ours(x, y)
    assert got.shape == (x.shape[0],)
    diff = (got - expected).abs().max().item()
    print(f"\nST-LPIPS {net} {case} {tuple(x.shape)}: max abs diff {diff:.2e}, values {got.tolist()}")
    assert diff <= PARITY_TOL, (got, expected)


def test_parity_of_spatial_maps_and_minus_one_one_inputs(pair):
    net, _, reference = pair
    x, y = image_pairs()["shift 1 px right"]
    ours = create_stlpips(net, input_range=(-1, 1))
    reference.spatial = True  # what LPIPS(spatial=True) sets
    try:
        with torch.no_grad():
            got = ours(2 * x - 1, 2 * y - 1, spatial=True)
            expected = reference(2 * x - 1, 2 * y - 1)  # the reference's own convention: [-1, 1]
    finally:
        reference.spatial = False
    assert got.shape == expected.shape == (2, 1, 64, 64)
    assert (got - expected).abs().max().item() <= PARITY_TOL


def test_parity_of_input_gradients(pair):
    _, ours, reference = pair
    x, y = image_pairs()["shift 2 px down"]
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    reference(x1, y, normalize=True).sum().backward()
    ours(x2, y).sum().backward()
    scale = x1.grad.abs().max().item()
    assert (x2.grad - x1.grad).abs().max().item() <= 1e-4 * scale


def test_registered_through_the_entry_point():
    registry = get_registry()
    assert registry.get("preset", "stlpips-alex").plugin == "stlpips"
    assert registry.get("backbone", "stlpips.vgg16").plugin == "stlpips"
    info = next(p for p in registry.plugins() if p.name == "stlpips")
    assert (info.distribution, info.version, info.error) == ("percept-stlpips", "0.1.0", None)
    assert info.registered == {
        "backbone": ["stlpips.alexnet", "stlpips.vgg16"],
        "preset": ["stlpips-alex", "stlpips-vgg"],
    }


@pytest.mark.parametrize(
    ("name", "modules", "channels"),
    [
        ("stlpips.alexnet", [2, 6, 10, 12, 14], [64, 192, 384, 256, 256]),
        ("stlpips.vgg16", [3, 9, 17, 25, 33], [64, 128, 256, 512, 512]),
    ],
)
def test_backbone_taps_are_the_stlpips_layers(name, modules, channels):
    bb = percept.create_backbone(name)
    assert bb.canonical_taps == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert [bb.tap_info(t).module for t in bb.canonical_taps] == [f"features.{i}" for i in modules]
    assert [bb.tap_info(t).channels for t in bb.canonical_taps] == channels
    assert bb.pretrained_cfg is not None and bb.pretrained_cfg.filename.endswith("_shift_tolerant.pth")
    # The packaged file is the one the parity tests ran against (its SHA-256 is recorded).
    net = "alex" if "alex" in name else "vgg"
    digest = hashlib.sha256(stlpips_weight_file(net).read_bytes()).hexdigest()
    assert bb.pretrained_cfg.checksum == digest


@pytest.mark.parametrize("name", ["stlpips.alexnet", "stlpips.vgg16"])
def test_backbones_meet_the_contract(name):
    assert "batch independence" in check_backbone(percept.create_backbone(name)).passed  # packaged weights


@pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")
def test_random_weights_warn_and_meet_the_contract():
    with pytest.warns(percept.RandomWeightsWarning, match="stlpips.alexnet"):
        create_stlpips_backbone("alex", None)
    assert "produces declared taps" in check_backbone("stlpips.alexnet").passed


def test_preset_meets_the_pipeline_contract():
    assert "identity" in check_pipeline(create_stlpips("alex")).passed


def test_backbone_in_a_spec_string():
    loss = percept.PerceptualLoss("stlpips.vgg16:conv2,conv3/unit/l2")
    x, y = image_pairs()["noise"]
    xg = x.clone().requires_grad_(True)
    value = loss(xg, y)
    value.backward()
    assert value > 0 and torch.isfinite(xg.grad).all()


def test_one_pixel_shift_scores_far_below_an_unrelated_image():
    metric = create_stlpips("alex")
    pairs = image_pairs()
    with torch.no_grad():
        shifted = metric(*pairs["shift 1 px right"])
        unrelated = metric(*pairs["unrelated"])
    assert (shifted < 0.2 * unrelated).all(), (shifted, unrelated)


def test_blurpool_matches_stlpips_downsample():
    from stlpips_pytorch.models_lpf.downsample import Downsample

    x = torch.rand(2, 5, 13, 16)
    expected = Downsample(filt_size=3, stride=2, channels=5, pad_more=True)(x)
    torch.testing.assert_close(BlurPool2d(5)(x), expected)


def test_weight_errors_are_clear(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="unknown weight tag 'stlpip' for 'stlpips.alexnet'. Did you mean 'stlpips'"):
        create_stlpips_backbone("alex", "stlpip")
    state = torch.load(stlpips_weight_file("alex"), map_location="cpu", weights_only=True)
    state["net.slice1.1.filt"] = torch.rand_like(state["net.slice1.1.filt"])
    torch.save(state, tmp_path / "bad_blur.pth")
    with pytest.raises(WeightsError, match="blur filter 'features.1.filt' is not the 3x3 binomial filter"):
        create_stlpips_backbone("alex", tmp_path / "bad_blur.pth")
    with pytest.raises(WeightsError, match="do not fit"):
        create_stlpips_backbone("alex", stlpips_weight_file("vgg"))
    import percept_stlpips.networks as networks

    monkeypatch.setattr(networks.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsError, match="pip install stlpips-pytorch ipython torchsummary"):
        create_stlpips("vgg")


def test_bad_images_are_clear_errors():
    metric = create_stlpips("alex")
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(percept.InputError, match="0..255"):
        metric(x * 255, x * 255)
    with pytest.raises(percept.InputError, match=f"at least {metric.min_size}x{metric.min_size}"):
        metric(x[..., :8, :8], x[..., :8, :8])
    with pytest.raises(SpecError, match="preset 'stlpips-alex' takes no taps"):
        percept.build_pipeline("stlpips-alex:conv1")


@pytest.mark.parametrize("backbone", ["stlpips.alexnet", "stlpips.vgg16"])
def test_the_research_toolkit_runs_on_the_plugin_backbones(backbone, tmp_path):
    """Sweep (every tap, every measure, equal to PerceptualLoss), select, finetune and visualize, with the
    packaged weights: the same check as every family of percept's own catalogue."""
    pytest.importorskip("pandas")
    pytest.importorskip("scipy")
    from percept.eval.contract import check_toolkit  # the toolkit's contract: its own public home

    check_toolkit(backbone, side=64, folder=tmp_path)
