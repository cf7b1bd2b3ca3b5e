"""``torch.func.grad`` and ``torch.func.vmap`` through every built-in distance, the fused op and a loss.

The promise: each transform gives what the plain computation gives (a loop over the mapped dimension,
``.backward()``), and the input checks neither break ``vmap`` nor stop checking under it.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.func import grad, vmap

import percept
from percept.errors import InputError
from percept.ops import feature_distance
from percept.registry import get_registry

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")

BUILTIN_DISTANCES = sorted(e.name for e in get_registry().entries("distance") if e.plugin.startswith("percept."))
K = 3  # size of the mapped dimension


def test_every_builtin_distance_is_covered():
    assert {"mse", "l1", "l2", "cosine", "style", "dists", "ssim"} <= set(BUILTIN_DISTANCES)


def _distance(name: str):
    return get_registry().get("distance", name).factory()


def _features(*shape: int, dtype=torch.float64) -> torch.Tensor:
    return torch.rand(*shape, dtype=dtype) + 0.1  # away from 0: |a - b| and norms stay differentiable


def _autograd(fn, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a.detach().clone().requires_grad_()
    fn(a, b).sum().backward()
    return a.grad


@pytest.mark.parametrize("name", BUILTIN_DISTANCES)
def test_grad_matches_backward(name):
    d = _distance(name)
    a, b = _features(2, 4, 12, 12), _features(2, 4, 12, 12)
    got = grad(lambda a: d(a, b).sum())(a)
    torch.testing.assert_close(got, _autograd(d, a, b))


@pytest.mark.parametrize("name", BUILTIN_DISTANCES)
def test_vmap_matches_a_loop(name):
    d = _distance(name)
    a, b = _features(K, 2, 4, 12, 12), _features(K, 2, 4, 12, 12)
    want = torch.stack([d(a[i], b[i]) for i in range(K)])
    torch.testing.assert_close(vmap(d)(a, b), want)
    # one side not mapped (a reference compared with K candidates), and the mapped dimension elsewhere
    torch.testing.assert_close(vmap(d, in_dims=(0, None))(a, b[0]), torch.stack([d(a[i], b[0]) for i in range(K)]))
    torch.testing.assert_close(vmap(d, in_dims=(1, 1))(a.movedim(0, 1), b.movedim(0, 1)), want)


@pytest.mark.parametrize("name", BUILTIN_DISTANCES)
def test_vmap_of_grad_and_grad_of_vmap(name):
    d = _distance(name)
    a, b = _features(K, 2, 4, 12, 12), _features(K, 2, 4, 12, 12)
    want = torch.stack([_autograd(d, a[i], b[i]) for i in range(K)])
    torch.testing.assert_close(vmap(grad(lambda a, b: d(a, b).sum()))(a, b), want)
    torch.testing.assert_close(grad(lambda a: vmap(d)(a, b).sum())(a), want)


@pytest.mark.parametrize("kind", ["sq", "abs", "cos"])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("backend", ["eager", "reference"])
def test_fused_op_with_weights_under_both_transforms(kind, normalize, backend):
    x, y, w = _features(K, 2, 5, 6, 7), _features(K, 2, 5, 6, 7), _features(5)

    def fn(x, y, w):
        return feature_distance(x, y, w, normalize=normalize, kind=kind, backend=backend)

    want = torch.stack([fn(x[i], y[i], w) for i in range(K)])
    torch.testing.assert_close(vmap(fn, in_dims=(0, 0, None))(x, y, w), want)
    # a weight per mapped slice (one call per slice inside the vmap rule)
    ws = _features(K, 5)
    torch.testing.assert_close(vmap(fn)(x, y, ws), torch.stack([fn(x[i], y[i], ws[i]) for i in range(K)]))
    # the gradient of the channel weights, as a learned readout takes it
    wg = w.detach().clone().requires_grad_()
    fn(x[0], y[0], wg).sum().backward()
    torch.testing.assert_close(grad(lambda w: fn(x[0], y[0], w).sum())(w), wg.grad)


def _loss(spec: str, **kwargs) -> percept.PerceptualLoss:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", percept.RandomWeightsWarning)
        return percept.PerceptualLoss(spec, weights=None, reduction="none", **kwargs)


SPECS = [
    "alexnet:conv1,conv2",
    "lpips-alex",
    "alexnet:conv1,conv2/unit/cosine",
    "alexnet:conv1,conv2/raw/dists",
    "alexnet:conv1/raw/ssim",
    "alexnet:conv1,conv2/raw/style",
]


@pytest.mark.parametrize("spec", SPECS)
def test_a_loss_with_input_checks_under_vmap_and_grad(spec):
    loss = _loss(spec)
    assert loss.pipeline.check_inputs
    x, y = torch.rand(K, 2, 3, 48, 48), torch.rand(K, 2, 3, 48, 48)
    torch.testing.assert_close(vmap(loss)(x, y), torch.stack([loss(x[i], y[i]) for i in range(K)]))
    torch.testing.assert_close(grad(lambda x: loss(x, y[0]).sum())(x[0]), _autograd(loss, x[0], y[0]))
    want = torch.stack([_autograd(loss, x[i], y[i]) for i in range(K)])
    torch.testing.assert_close(vmap(grad(lambda x, y: loss(x, y).sum()))(x, y), want)


def test_input_checks_still_refuse_bad_values_under_vmap():
    loss = _loss("alexnet:conv1")
    x, y = torch.rand(K, 2, 3, 48, 48), torch.rand(K, 2, 3, 48, 48)
    bad = x.clone()
    bad[1, 0, 0, 0, 0] = float("nan")  # in one mapped slice only
    with pytest.raises(InputError, match="NaN or Inf"):
        vmap(loss)(bad, y)
    with pytest.raises(InputError, match="divide by 255"):
        vmap(loss)(x * 255, y)
    with pytest.raises(InputError, match="NaN or Inf"):
        grad(lambda x: loss(x, y[0]).sum())(bad[1])


def test_dists_preset_under_vmap_and_grad():
    loss = _loss("dists")
    x, y = torch.rand(2, 1, 3, 64, 64), torch.rand(2, 1, 3, 64, 64)
    torch.testing.assert_close(vmap(loss)(x, y), torch.stack([loss(x[i], y[i]) for i in range(2)]))
    torch.testing.assert_close(grad(lambda x: loss(x, y[0]).sum())(x[0]), _autograd(loss, x[0], y[0]))
