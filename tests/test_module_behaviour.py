"""PerceptualLoss and PerceptualMetric behave as nn.Module and torchmetrics users expect.

Device moves, dtype rules (``.half()`` on a loss is nn.Module's cast; on a metric it is torchmetrics'
no-op and ``set_dtype`` / ``.to(dtype)`` cast the network while the running sum stays float64),
``reset()``, ``MetricCollection``, ``clone()``, ``copy.deepcopy``, pickling, metric ``state_dict``.
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from percept import PerceptualLoss, PerceptualMetric

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")

LOSS_SPEC = "alexnet:conv1,conv2"
METRIC_SPEC = "lpips-alex"
SIZE = 64


def images(n: int = 2, size: int = SIZE) -> torch.Tensor:
    return torch.rand(n, 3, size, size)


def make_loss(**kwargs) -> PerceptualLoss:
    torch.manual_seed(0)
    return PerceptualLoss(LOSS_SPEC, weights=None, **kwargs)


def make_metric(**kwargs) -> PerceptualMetric:
    torch.manual_seed(0)
    return PerceptualMetric(METRIC_SPEC, weights=None, **kwargs)


class Restorer(nn.Module):
    """A trainable model that holds its loss, as training code does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.loss = make_loss()

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(torch.sigmoid(self.conv(x)), target)


def network_dtypes(module: nn.Module) -> set[torch.dtype]:
    return {p.dtype for p in module.parameters()}


def assert_same_state(a: PerceptualMetric, b: PerceptualMetric) -> None:
    assert a.metric_state.keys() == b.metric_state.keys()
    for key, value in a.metric_state.items():
        other = b.metric_state[key]
        if isinstance(value, list):
            assert len(value) == len(other) and all(torch.equal(u, v) for u, v in zip(value, other, strict=True))
        else:
            assert torch.equal(value, other), key


# -- copies and pickling ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["pickle", "torch.save", "deepcopy"])
def test_loss_copies_compute_the_same_and_keep_the_frozen_network(how: str) -> None:
    model = Restorer()
    x, y = images(), images()
    expected = model(x, y)
    if how == "pickle":
        copied = pickle.loads(pickle.dumps(model))
    elif how == "torch.save":  # the whole module, as `torch.save(model)` users do
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        copied = torch.load(buffer, weights_only=False)
    else:
        copied = copy.deepcopy(model)
    torch.testing.assert_close(copied(x, y), expected, rtol=0, atol=0)
    assert sorted(copied.state_dict()) == ["conv.bias", "conv.weight"]  # the hooks survived the copy
    assert not any(p.requires_grad for p in copied.loss.parameters())
    copied.train()
    assert not copied.loss.pipeline.backbone.training
    copied(x, y).backward()
    assert copied.conv.weight.grad is not None and model.conv.weight.grad is None


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("how", ["pickle", "clone", "deepcopy"])
def test_metric_copies_keep_state_and_go_on_independently(how: str, reduction: str) -> None:
    metric = make_metric(reduction=reduction)
    first, second = (images(2), images(2)), (images(3), images(3))
    metric.update(*first)
    copied = {
        "pickle": lambda m: pickle.loads(pickle.dumps(m)),
        "clone": lambda m: m.clone(),
        "deepcopy": copy.deepcopy,
    }[how](metric)
    assert_same_state(copied, metric)
    torch.testing.assert_close(copied.compute(), metric.compute(), rtol=0, atol=0)

    copied.update(*second)  # the copy goes on; the original does not see it
    metric_alone = metric.compute()
    metric.update(*second)
    torch.testing.assert_close(copied.compute(), metric.compute(), rtol=0, atol=0)
    assert metric_alone.shape != metric.compute().shape or not torch.equal(metric_alone, metric.compute())


# -- device moves -------------------------------------------------------------------------------

DEVICES = ["meta"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_metric_to_device_moves_network_and_states(device: str) -> None:
    """``meta`` stands in for an accelerator where there is none: states, defaults and network move."""
    metric = make_metric()
    metric.update(images(), images())
    moved = copy.deepcopy(metric).to(device)
    assert moved.device.type == device
    assert {p.device.type for p in moved.pipeline.parameters()} == {device}
    assert {b.device.type for b in moved.pipeline.buffers()} == {device}
    assert moved.sum_scores.device.type == device and moved.total.device.type == device
    assert moved.sum_scores.dtype == torch.float64
    moved.reset()
    assert moved.sum_scores.device.type == device  # defaults moved too
    if device != "meta":
        back = moved.to("cpu")
        back.update(images(), images())
        assert back.compute().device.type == "cpu"


@pytest.mark.parametrize("device", DEVICES)
def test_loss_to_device_moves_network(device: str) -> None:
    model = Restorer().to(device)
    assert {p.device.type for p in model.parameters()} == {device}
    assert {p.device.type for p in model.loss.pipeline.backbone.parameters()} == {device}
    assert {b.device.type for b in model.loss.pipeline.backbone.buffers()} == {device}


# -- dtype rules --------------------------------------------------------------------------------


def test_loss_half_casts_network_and_takes_float32_targets() -> None:
    """nn.Module's rule: ``.half()`` casts the network; images of another float dtype follow it, and
    distances come out in float32."""
    loss = make_loss(reduction="none")
    x, y = images(), images()
    reference = loss(x, y)
    half = copy.deepcopy(loss).half()
    assert network_dtypes(half) == {torch.float16}
    for a, b in [(x.half(), y.half()), (x, y)]:
        out = half(a, b)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, reference, rtol=2e-2, atol=1e-3)
    xr = x.half().requires_grad_(True)
    half(xr, y.half()).sum().backward()
    assert xr.grad is not None and xr.grad.dtype == torch.float16 and torch.isfinite(xr.grad).all()


def test_metric_half_is_a_no_op_as_in_torchmetrics() -> None:
    metric = make_metric()
    assert metric.half() is metric
    assert network_dtypes(metric) == {torch.float32}
    assert metric.sum_scores.dtype == torch.float64
    metric.update(images().half(), images().half())  # half images into the float32 network
    assert int(metric.total) == 2 and torch.isfinite(metric.compute())


@pytest.mark.parametrize("cast", ["set_dtype", "to"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_metric_low_precision_network_keeps_full_precision_states(
    cast: str, dtype: torch.dtype, reduction: str
) -> None:
    metric = make_metric(reduction=reduction)
    batches = [(images(), images()) for _ in range(2)]
    metric.update(*batches[0])
    low = copy.deepcopy(metric)
    low = low.set_dtype(dtype) if cast == "set_dtype" else low.to(dtype)
    assert network_dtypes(low.pipeline) == {dtype}
    if reduction == "mean":
        assert low.sum_scores.dtype == torch.float64 and low._defaults["sum_scores"].dtype == torch.float64
        assert low.total.dtype == torch.long
    else:
        assert all(s.dtype == torch.float32 for s in low.scores)
    for lo in (low, metric):
        lo.update(*batches[1])
    torch.testing.assert_close(low.compute(), metric.compute(), rtol=3e-2, atol=3e-3)
    low.reset()
    if reduction == "mean":
        assert low.sum_scores.dtype == torch.float64 and float(low.sum_scores) == 0.0


# -- reset, collections, state_dict -------------------------------------------------------------


def test_metric_reset_then_reuse_matches_a_fresh_metric() -> None:
    metric, fresh = make_metric(), make_metric()
    metric.update(images(4), images(4))
    metric.compute()
    metric.reset()
    x, y = images(3), images(3)
    metric.update(x, y)
    fresh.update(x, y)
    torch.testing.assert_close(metric.compute(), fresh.compute(), rtol=0, atol=0)
    assert int(metric.total) == 3


def test_metric_collection_with_psnr_and_ssim() -> None:
    collection = MetricCollection(
        {
            "lpips": make_metric(),
            "psnr": PeakSignalNoiseRatio(data_range=1.0),
            "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
        },
        prefix="val/",
    )
    alone = make_metric()
    clean = images(4)
    noisy = (clean + 0.05 * torch.randn_like(clean)).clamp(0, 1)
    for sl in (slice(0, 2), slice(2, 4)):
        collection.update(noisy[sl], clean[sl])
        alone.update(noisy[sl], clean[sl])
    values = collection.compute()
    assert set(values) == {"val/lpips", "val/psnr", "val/ssim"}
    torch.testing.assert_close(values["val/lpips"], alone.compute(), rtol=0, atol=0)
    assert 20 < float(values["val/psnr"]) < 35  # noise of std 0.05: about 26 dB
    collection.reset()
    assert int(collection["lpips"].total) == 0
    clone = collection.clone(prefix="test/")
    clone.update(noisy, clean)
    assert set(clone.compute()) == {"test/lpips", "test/psnr", "test/ssim"}


@pytest.mark.filterwarnings("ignore:The ``compute`` method:UserWarning")  # restored states, no update
def test_metric_state_dict_holds_states_only_when_persistent() -> None:
    metric = make_metric()
    metric.update(images(), images())
    assert metric.state_dict() == {}  # torchmetrics' default: states are not persistent
    metric.persistent(True)
    state = metric.state_dict()
    assert sorted(state) == ["sum_scores", "total"]  # never the network
    restored = make_metric()
    restored.persistent(True)
    restored.load_state_dict(state, strict=True)
    torch.testing.assert_close(restored.compute(), metric.compute(), rtol=0, atol=0)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_metric_updates_after_a_reset_under_inference_mode(reduction: str) -> None:
    """Lightning's ``trainer.validate`` computes and resets under ``torch.inference_mode``; the next
    ``fit`` validates under ``torch.no_grad`` with the states that reset made."""
    metric, fresh = make_metric(reduction=reduction), make_metric(reduction=reduction)
    with torch.inference_mode():
        metric.update(images(), images())
        metric.compute()
        metric.reset()
    x, y = images(3), images(3)
    with torch.no_grad():
        metric.update(x, y)
    fresh.update(x, y)
    torch.testing.assert_close(metric.compute(), fresh.compute(), rtol=0, atol=0)
