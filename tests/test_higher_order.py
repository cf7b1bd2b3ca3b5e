"""Second derivatives through every ``torch.autograd.Function`` percept defines, and through a whole loss.

The hand-written backwards (the fused op's, DISTS' terms) treat per-pixel or per-channel statistics as
constants: exact for the first derivative, wrong for the second. When the backward itself is recorded
(``create_graph=True``, ``torch.func`` transforms) they switch to the vector-Jacobian product of the
reference math, so a gradient penalty gets the right numbers. ``gradgradcheck`` compares against finite
differences in float64.
"""

from __future__ import annotations

import pytest
import torch

import percept
from percept.ops import feature_distance
from percept.ops.dists import dists_terms, l2pool
from percept.ops.windows import hann_window_2d

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


def _maps(*shape: int) -> torch.Tensor:
    return (torch.rand(*shape, dtype=torch.float64) + 0.1).requires_grad_()


@pytest.mark.parametrize("backend", ["reference", "eager", "compiled"])
@pytest.mark.parametrize("kind", ["sq", "abs", "cos"])
@pytest.mark.parametrize("normalize", [True, False])
def test_fused_op_second_derivatives(backend, kind, normalize):
    torch.manual_seed(0)
    x, y, w = _maps(2, 5, 3, 3), _maps(2, 5, 3, 3), _maps(5)

    def fn(a, b, weight):
        return feature_distance(a, b, weight, normalize=normalize, kind=kind, backend=backend)

    assert torch.autograd.gradgradcheck(fn, (x, y, w))


def test_dists_terms_and_l2pool_second_derivatives():
    torch.manual_seed(0)
    a, b = _maps(2, 3, 5, 5), _maps(2, 3, 5, 5)
    assert torch.autograd.gradgradcheck(dists_terms, (a, b))
    window = hann_window_2d(5).to(torch.float64).expand(3, 1, 3, 3).contiguous()
    assert torch.autograd.gradgradcheck(lambda t: l2pool(t, window, 2, 1), (a,))


def test_first_derivative_is_unchanged_when_the_backward_is_recorded():
    torch.manual_seed(0)
    x, y, w = _maps(2, 6, 4, 4), _maps(2, 6, 4, 4), _maps(6)
    out = feature_distance(x, y, w, normalize=True, kind="sq", backend="eager").sum()
    plain = torch.autograd.grad(out, (x, y, w), retain_graph=True)
    recorded = torch.autograd.grad(out, (x, y, w), create_graph=True)
    for p, r in zip(plain, recorded, strict=True):
        torch.testing.assert_close(p, r)


@pytest.mark.parametrize("spec", ["lpips-alex", "dists"])
def test_gradient_penalty_through_a_loss_matches_the_reference_backend(spec, monkeypatch):
    """``d/dx ||d loss / dx||^2``: what a gradient penalty differentiates. The fused default and the plain
    autograd reference (``PERCEPT_FUSED=0``) agree."""
    torch.manual_seed(0)
    x0, y = torch.rand(2, 3, 64, 64, dtype=torch.float64), torch.rand(2, 3, 64, 64, dtype=torch.float64)

    def penalty_grad(setting: str) -> torch.Tensor:
        monkeypatch.setenv("PERCEPT_FUSED", setting)
        torch.manual_seed(1)
        loss = percept.PerceptualLoss(spec, weights=None).double()
        x = x0.clone().requires_grad_()
        (g,) = torch.autograd.grad(loss(x, y).sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.square().sum(), x)
        return gg

    torch.testing.assert_close(penalty_grad("auto"), penalty_grad("0"), rtol=1e-6, atol=1e-9)
