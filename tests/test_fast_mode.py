"""``PerceptualLoss(spec, fast=True)``: channels-last (and autocast on CUDA), close to the exact path, opt-in."""

from __future__ import annotations

import warnings

import pytest
import torch

import percept

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")

SPECS = ["alexnet:conv1,conv2", "lpips-alex", "alexnet:conv1,conv2/raw/dists", "vgg16:conv2"]


def _pair(spec: str, **kwargs) -> tuple[percept.PerceptualLoss, percept.PerceptualLoss]:
    """The exact loss and a fast one holding the same network weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", percept.RandomWeightsWarning)
        exact = percept.PerceptualLoss(spec, weights=None, reduction="none", **kwargs)
        fast = percept.PerceptualLoss(spec, weights=None, reduction="none", fast=True, **kwargs)
    fast.pipeline.load_state_dict(exact.pipeline.state_dict(), strict=False)
    fast.pipeline.backbone.load_state_dict(exact.pipeline.backbone.state_dict())
    for a, b in zip(exact.pipeline.readouts, fast.pipeline.readouts, strict=True):
        b.load_state_dict(a.state_dict())
    return exact, fast


def test_exact_is_the_default():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", percept.RandomWeightsWarning)
        loss = percept.PerceptualLoss("alexnet:conv1", weights=None)
    assert loss.fast is False
    conv = next(m for m in loss.pipeline.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous()


@pytest.mark.parametrize("spec", SPECS)
def test_fast_loss_within_1e_3_of_the_exact_path_and_gradient_close(spec):
    exact, fast = _pair(spec)
    conv = next(m for m in fast.pipeline.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    values, grads = [], []
    for loss in (exact, fast):
        xg = x.clone().requires_grad_()
        value = loss(xg, y)
        value.sum().backward()
        values.append(value.detach())
        grads.append(xg.grad)
    assert values[1].dtype == torch.float32 and values[1].shape == (2,)
    assert grads[1].shape == x.shape  # the gradient comes back in the caller's layout and shape
    rel = float(((values[1] - values[0]).abs() / values[0].abs()).max())
    assert rel <= 1e-5, rel  # the promise is 1e-3; rounding alone gives about 1e-7
    # Gradients: where rounding flips a ReLU or a max-pool's choice between near-equal values, a pixel's
    # gradient takes another path; over the whole image that stays small.
    grad_rel = float((grads[1] - grads[0]).norm() / grads[0].norm())
    assert grad_rel <= 1e-2, grad_rel


def test_fast_mode_keeps_the_input_checks():
    _, fast = _pair("alexnet:conv1")
    with pytest.raises(percept.InputError, match="divide by 255"):
        fast(torch.rand(1, 3, 32, 32) * 255, torch.rand(1, 3, 32, 32))
    with pytest.raises(percept.InputError, match="got 3 dimensions"):
        fast(torch.rand(3, 32, 32), torch.rand(3, 32, 32))


def test_repr_says_fast():
    _, fast = _pair("alexnet:conv1")
    assert "fast=True" in repr(fast)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="autocast in fast mode applies on CUDA only")
def test_fast_mode_on_cuda_autocasts_and_returns_float32():
    exact, fast = (m.cuda() for m in _pair("alexnet:conv1,conv2"))
    x, y = torch.rand(2, 3, 64, 64, device="cuda"), torch.rand(2, 3, 64, 64, device="cuda")
    value = fast(x, y)
    assert value.dtype == torch.float32
    rel = float(((value - exact(x, y)).abs() / exact(x, y).abs()).max())
    assert rel <= 5e-2, rel  # half-precision features
