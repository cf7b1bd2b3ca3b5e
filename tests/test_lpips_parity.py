"""The LPIPS presets are exact: same distances and input gradients as the ``lpips`` package and torchmetrics.

Every network runs with the same random backbone weights in percept and in the reference (nothing is
downloaded); the linear heads are the published v0.1 files, which both references ship. What is
compared: the ``(N,)`` distances and the gradient wrt ``x`` (``y`` needs no gradient, so percept runs
it without a graph), the ``spatial=True`` maps, and the ``input_range=(-1, 1)`` convention.

Measured on CPU, float32, 2 threads (torch 2.14, lpips 0.1.4, torchmetrics 1.9.0). The two references
agree with each other to the bit on the forward pass, so one figure serves both; gradient figures
move by up to ~1.5x from run to run (threaded convolution backward), these are the largest seen.
"grad" is max |g - g_ref| / max |g_ref| for the gradient wrt x.

=======  ============  ===========  ========  ===========
net      N x H x W     forward      grad      spatial map
=======  ============  ===========  ========  ===========
alex     1 x 64 x 64   2.2e-8       4.5e-7    6.0e-8
alex     3 x 97 x 131  1.5e-8       4.6e-7    6.0e-8
vgg      1 x 64 x 64   1.5e-8       4.9e-7    2.1e-7
vgg      3 x 97 x 131  1.5e-8       5.6e-7    2.1e-7
squeeze  1 x 64 x 64   0            4.9e-7    1.2e-7
squeeze  3 x 97 x 131  0            4.9e-7    1.8e-7
=======  ============  ===========  ========  ===========

``input_range=(-1, 1)`` (3 x 64 x 64, reference with ``normalize=False``): forward <= 1.5e-8, grad
<= 5.9e-7 for all three nets. ``PerceptualMetric("lpips-alex")`` against torchmetrics'
``LearnedPerceptualImagePatchSimilarity`` (updates of 2, 1 and 3 images at 64 x 64): 7.5e-9 (mean),
6.0e-8 (sum), 7.5e-9 (per sample). The spatial maps differ a little more than the means: that is
float32 rounding of per-pixel values, which the spatial mean averages out (percept sums the weighted
channels inside the fused op, LPIPS with a 1x1 convolution).

Run ``pytest -s tests/test_lpips_parity.py`` to print the figures of every case.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import percept

lpips = pytest.importorskip("lpips")
tm_lpips = pytest.importorskip("torchmetrics.functional.image.lpips")

pytestmark = [
    pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning"),
    # lpips 0.1.4 still calls torchvision with ``pretrained=``.
    pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning"),
]

NETS = ("alex", "vgg", "squeeze")
SHAPES = [(1, 64, 64), (3, 97, 131)]
FORWARD_TOL = 1e-5
GRAD_REL_TOL = 1e-4


def feature_key(ref_key: str) -> str:
    """torchvision ``features`` key of a reference backbone key.

    Both references cut ``features`` into slices that keep the original indices as names:
    ``slice2.4.weight`` (lpips, torchmetrics' AlexNet/VGG) and ``slices.1.4.weight`` (torchmetrics'
    SqueezeNet) are both ``4.weight``.
    """
    parts = ref_key.split(".")
    return ".".join(parts[2:] if parts[0] == "slices" else parts[1:])


def copy_backbone(ref: nn.Module, pipeline: percept.Pipeline) -> None:
    features = pipeline.backbone.model.features.state_dict()
    ref.net.load_state_dict({k: features[feature_key(k)] for k in ref.net.state_dict()})


def run_reference(ref: nn.Module, x: torch.Tensor, y: torch.Tensor, *, normalize: bool, spatial: bool = False):
    """``(N,)`` distances (or the ``(N, 1, H, W)`` map) of an lpips / torchmetrics LPIPS module."""
    # Both references fix ``spatial`` at construction and read the attribute in ``forward``.
    ref.spatial = spatial
    try:
        out = ref(x, y, normalize=normalize)
    finally:
        ref.spatial = False
    return out if spatial else out.flatten()


@dataclass
class Setup:
    net: str
    pipeline: percept.Pipeline  # input_range (0, 1)
    pipeline_pm1: percept.Pipeline  # input_range (-1, 1), same weights
    refs: dict[str, nn.Module]


@pytest.fixture(scope="module", params=NETS)
def setup(request) -> Setup:
    net = request.param
    pipeline = percept.build_pipeline(f"lpips-{net}", weights=None)
    pipeline_pm1 = percept.build_pipeline(f"lpips-{net}", weights=None, input_range=(-1, 1))
    pipeline_pm1.backbone.model.load_state_dict(pipeline.backbone.model.state_dict())
    refs = {
        "lpips": lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False),
        "torchmetrics": tm_lpips._LPIPS(pretrained=True, net=net, pnet_rand=True),
    }
    for ref in refs.values():
        copy_backbone(ref.eval(), pipeline)
    return Setup(net, pipeline, pipeline_pm1, refs)


def compare(pipeline, refs: dict[str, nn.Module], x, y, *, normalize: bool) -> dict[str, tuple[float, float]]:
    """Per reference: max abs forward difference, and max abs difference of the gradients wrt ``x``
    divided by the reference's max abs gradient. ``y`` needs no gradient."""
    x_ours = x.clone().requires_grad_(True)
    ours = pipeline(x_ours, y)
    assert ours.shape == (x.shape[0],)
    (g_ours,) = torch.autograd.grad(ours.sum(), x_ours)
    assert torch.isfinite(g_ours).all()
    figures = {}
    for name, ref in refs.items():
        x_ref = x.clone().requires_grad_(True)
        theirs = run_reference(ref, x_ref, y, normalize=normalize)
        (g_ref,) = torch.autograd.grad(theirs.sum(), x_ref)
        assert theirs.shape == ours.shape
        forward = (ours.detach() - theirs.detach()).abs().max().item()
        figures[name] = forward, ((g_ours - g_ref).abs().max() / g_ref.abs().max()).item()
    return figures


def check(figures: dict[str, tuple[float, float]], what: str) -> None:
    for name, (forward, grad) in figures.items():
        print(f"\n{what} vs {name}: forward {forward:.2e}, grad rel {grad:.2e}")
    for name, (forward, grad) in figures.items():
        assert forward <= FORWARD_TOL, f"{what} vs {name}: forward differs by {forward:.3g}"
        assert grad <= GRAD_REL_TOL, f"{what} vs {name}: input gradient differs by {grad:.3g} (relative)"


@pytest.mark.parametrize(("n", "h", "w"), SHAPES, ids=lambda v: str(v))
def test_distance_and_input_gradient_match(setup: Setup, n: int, h: int, w: int) -> None:
    x, y = torch.rand(n, 3, h, w), torch.rand(n, 3, h, w)
    check(compare(setup.pipeline, setup.refs, x, y, normalize=True), f"lpips-{setup.net} {n}x{h}x{w}")


@pytest.mark.parametrize(("n", "h", "w"), SHAPES, ids=lambda v: str(v))
def test_spatial_map_matches(setup: Setup, n: int, h: int, w: int) -> None:
    x, y = torch.rand(n, 3, h, w), torch.rand(n, 3, h, w)
    with torch.no_grad():
        ours = setup.pipeline(x, y, spatial=True)
        assert ours.shape == (n, 1, h, w)
        assert (ours >= 0).all()
        for name, ref in setup.refs.items():
            theirs = run_reference(ref, x, y, normalize=True, spatial=True)
            assert theirs.shape == ours.shape
            diff = (ours - theirs).abs().max().item()
            print(f"\nlpips-{setup.net} spatial {n}x{h}x{w} vs {name}: {diff:.2e}")
            assert diff <= FORWARD_TOL, f"spatial map differs from {name} by {diff:.3g}"


def test_minus_one_to_one_input_range(setup: Setup) -> None:
    x, y = torch.rand(3, 3, 64, 64) * 2 - 1, torch.rand(3, 3, 64, 64) * 2 - 1
    figures = compare(setup.pipeline_pm1, setup.refs, x, y, normalize=False)
    check(figures, f"lpips-{setup.net} input_range=(-1, 1)")
    # The same images mapped to [0, 1] give the same distances through the default pipeline.
    with torch.no_grad():
        default = setup.pipeline((x + 1) / 2, (y + 1) / 2)
        pm1 = setup.pipeline_pm1(x, y)
    torch.testing.assert_close(default, pm1, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_metric_matches_torchmetrics(monkeypatch: pytest.MonkeyPatch, reduction: str) -> None:
    tm_image = pytest.importorskip("torchmetrics.image.lpip")
    # The torchmetrics metric builds its backbone with ImageNet weights (a download); build it with a
    # random one instead, then give it percept's weights.
    monkeypatch.setattr(tm_image, "_NoTrainLpips", functools.partial(tm_lpips._NoTrainLpips, pnet_rand=True))
    ours = percept.PerceptualMetric("lpips-alex", weights=None, reduction=reduction)
    theirs = tm_image.LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True, reduction=reduction)
    copy_backbone(theirs.net, ours.pipeline)
    for n in (2, 1, 3):
        x, y = torch.rand(n, 3, 64, 64), torch.rand(n, 3, 64, 64)
        ours.update(x, y)
        theirs.update(x, y)
    a, b = ours.compute(), theirs.compute()
    assert a.shape == b.shape
    print(f"\nPerceptualMetric(lpips-alex, {reduction}) vs torchmetrics: {(a - b).abs().max().item():.2e}")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
