"""The ``dists`` preset against DISTS_pytorch and torchmetrics' DISTS, with the same random VGG16 copied in.

Promised: forward max abs difference <= 1e-5; input gradients within 1e-4 relative (float32, CPU), or,
where a random VGG16 makes the gradient ill-conditioned in float32 (L2 pooling's ``sqrt`` near 0 on dead
channels), within twice the reference's own distance from a float64 computation. ``pytest -s`` prints
the measured figures.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from conftest import no_random_warning

from percept import build_pipeline
from percept.builtin.dists import torchmetrics_dists_file

DISTS_pt = pytest.importorskip("DISTS_pytorch.DISTS_pt")
tm_dists = pytest.importorskip("torchmetrics.functional.image.dists")

CASES = [(1, 64, 64), (2, 37, 53)]


@pytest.fixture(scope="module")
def ours():
    torch.manual_seed(0)
    with no_random_warning():
        return build_pipeline("dists", weights=None)


def _vgg_like(pipeline) -> SimpleNamespace:
    """What the references read off ``vgg16(pretrained=True)``: ``.features``, here a copy of ours (they skip
    the pooling layers, which they replace by their own L2 pooling)."""
    features = copy.deepcopy(pipeline.backbone.model.features)
    return SimpleNamespace(features=features.requires_grad_(False))


@pytest.fixture(scope="module")
def references(ours):
    mp = pytest.MonkeyPatch()
    mp.setattr(DISTS_pt.models, "vgg16", lambda *a, **k: _vgg_like(ours))
    mp.setattr(tm_dists, "vgg16", lambda *a, **k: _vgg_like(ours))
    try:
        official = DISTS_pt.DISTS(load_weights=False)
        published = torch.load(torchmetrics_dists_file(), weights_only=True)
        official.alpha.data, official.beta.data = published["alpha"], published["beta"]
        torchmetrics_net = tm_dists.DISTSNetwork(load_weights=True)
    finally:
        mp.undo()
    return {"DISTS_pytorch": official.eval(), "torchmetrics": torchmetrics_net.eval()}


def _images(n: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g)
    y = (x + 0.2 * torch.randn(n, 3, h, w, generator=g)).clamp(0, 1)
    return x, y


@pytest.mark.parametrize("reference", ["DISTS_pytorch", "torchmetrics"])
@pytest.mark.parametrize(("n", "h", "w"), CASES)
def test_forward_and_gradients_match(ours, references, reference, n, h, w):
    ref = references[reference]
    x, y = _images(n, h, w, seed=h * w)
    xa = x.clone().requires_grad_(True)
    expected = ref(xa, y, require_grad=True).reshape(-1)
    expected.sum().backward()
    xb = x.clone().requires_grad_(True)
    got = ours(xb, y)
    got.sum().backward()
    xd = x.double().requires_grad_(True)
    copy.deepcopy(ours).double()(xd, y.double()).sum().backward()
    forward_diff = (got - expected).abs().max().item()
    scale = xa.grad.abs().max()
    grad_rel = ((xb.grad - xa.grad).abs().max() / scale).item()
    ref_error = ((xa.grad.double() - xd.grad).abs().max() / scale).item()
    assert got.shape == (n,)
    assert forward_diff <= 1e-5
    assert grad_rel <= max(1e-4, 2 * ref_error)
    print(
        f"\nDISTS vs {reference} {n}x{h}x{w}: forward max abs diff {forward_diff:.2e}, grad rel diff {grad_rel:.2e} "
        f"(the reference against float64: {ref_error:.2e})"
    )


def test_input_range_minus_one_one(ours, references):
    with no_random_warning():
        signed = build_pipeline("dists", weights=None, input_range=(-1, 1))
    signed.backbone.model.load_state_dict(ours.backbone.model.state_dict())
    x, y = _images(2, 48, 40, seed=1)
    expected = references["DISTS_pytorch"](x, y).reshape(-1)
    assert (signed(x * 2 - 1, y * 2 - 1) - expected).abs().max().item() <= 1e-5


def test_identical_images_score_zero_and_grey_works(ours):
    x, y = torch.rand(2, 1, 40, 40), torch.rand(2, 1, 40, 40)
    assert ours(x, x).abs().max().item() <= 1e-5
    colour = ours(x.expand(-1, 3, -1, -1).contiguous(), y.expand(-1, 3, -1, -1).contiguous())
    assert (ours(x, y) - colour).abs().max().item() <= 1e-6


def test_weights_file_is_torchmetrics_and_sums_to_one(ours):
    total = sum(float(r.alpha.sum() + r.beta.sum()) for r in ours.readouts)
    assert abs(total - 1.0) < 1e-5
    assert [r.alpha.numel() for r in ours.readouts] == [3, 64, 128, 256, 512, 512]
    assert ours.taps == ["pixel", "conv1", "conv2", "conv3", "conv4", "conv5"]
