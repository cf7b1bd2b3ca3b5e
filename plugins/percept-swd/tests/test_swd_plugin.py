"""percept-swd: the laws of the sliced Wasserstein distance, its readout, and its life as a percept plugin."""

from __future__ import annotations

import pytest
import torch
from percept_swd import SlicedProjection, SlicedWasserstein, random_directions, sliced_wasserstein

import percept
from percept.plugin import InputError, SpecError, check_distance, check_plugin, check_readout, get_registry

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


def features(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).relu()


def test_registered_through_the_entry_point():
    registry = get_registry()
    assert registry.get("readout", "sliced").plugin == "swd"
    assert registry.get("distance", "swd").plugin == "swd"
    info = next(p for p in registry.plugins() if p.name == "swd")
    assert (info.distribution, info.version, info.error) == ("percept-swd", "0.1.0", None)
    assert info.registered == {"readout": ["sliced"], "distance": ["swd"]}


def test_contract_kit():
    assert "identity" in check_distance("swd").passed
    assert "identity" in check_distance("swd", shape=(3, 8)).passed  # one sample per slice
    assert "batch independence" in check_distance("swd", readout=SlicedProjection(8, 5)).passed
    assert "batch independence" in check_readout("sliced").passed
    assert "batch independence" in check_readout(SlicedProjection(8, projections=3, seed=1)).passed
    assert [r.name for r in check_plugin("swd")] == ["sliced", "swd"]


def test_identity_and_symmetry():
    a, b = features(3, 6, 7, 5, seed=1), features(3, 6, 7, 5, seed=2)
    d = SlicedWasserstein()
    assert torch.equal(d(a, a.clone()), torch.zeros(3))
    torch.testing.assert_close(d(a, b), d(b, a), rtol=0, atol=0)
    assert (d(a, b) > 0).all()


def test_ignores_arrangement_and_sees_distribution():
    a = features(2, 4, 8, 8, seed=3)
    shuffled = a.flatten(2)[:, :, torch.randperm(64)].reshape_as(a)
    assert SlicedWasserstein()(a, shuffled).abs().max() < 1e-7
    # A shift of every value by c moves each 1-D distribution by c: distance c^2 (p=2), |c| (p=1).
    assert torch.allclose(SlicedWasserstein()(a, a + 0.3), torch.full((2,), 0.09))
    assert torch.allclose(SlicedWasserstein(p=1)(a, a - 0.3), torch.full((2,), 0.3))


def test_projected_shift_has_the_closed_form():
    # Translating every point by v moves its projection on u_k by <u_k, v>: swd = mean_k <u_k, v>^2.
    r = SlicedProjection(5, projections=7, seed=4)
    a = features(1, 5, 6, 6, seed=5)
    v = torch.tensor([0.5, -1.0, 0.25, 0.0, 2.0])
    expected = (r.directions @ v).square().mean()
    torch.testing.assert_close(SlicedWasserstein()(r(a), r(a + v.view(1, 5, 1, 1))), expected.reshape(1))


def test_matches_the_one_dimensional_wasserstein_definition():
    # Between two empirical distributions of M points, W_2^2 is the mean squared gap of the sorted values;
    # brute force over every matching for M = 4 agrees.
    import itertools

    x, y = torch.tensor([0.3, -1.0, 2.0, 0.5]), torch.tensor([1.0, 0.0, -0.5, 4.0])
    best = min(float((x - y[list(perm)]).square().mean()) for perm in itertools.permutations(range(4)))
    got = sliced_wasserstein(x.view(1, 1, 4), y.view(1, 1, 4))
    assert abs(float(got) - best) < 1e-6


def test_batch_independence():
    a, b = features(4, 3, 5, 5, seed=6), features(4, 3, 5, 5, seed=7)
    d = SlicedWasserstein()
    torch.testing.assert_close(d(a, b), torch.cat([d(a[i : i + 1], b[i : i + 1]) for i in range(4)]))


def test_gradient_matches_finite_differences():
    r = SlicedProjection(3, projections=4, seed=0).double()
    a = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: SlicedWasserstein()(r(t), r(b)), (a,))


def test_gradient_is_finite_at_identity_and_points_the_right_way():
    a = features(2, 4, 6, 6, seed=8)
    x = a.clone().requires_grad_(True)
    SlicedWasserstein()(x, a).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() == 0
    y = (a + 0.5).requires_grad_(True)
    d = SlicedWasserstein()(y, a).sum()
    d.backward()
    with torch.no_grad():
        assert SlicedWasserstein()(y - 0.1 * y.grad, a).sum() < d


def test_directions_are_fixed_by_the_seed():
    assert torch.equal(random_directions(16, 8, seed=3), random_directions(16, 8, seed=3))
    assert not torch.equal(random_directions(16, 8, seed=3), random_directions(16, 8, seed=4))
    r1, r2 = SlicedProjection(16, seed=3), SlicedProjection(16, seed=3)
    f = features(2, 16, 4, 4)
    assert torch.equal(r1(f), r2(f))
    assert r1.directions.shape == (16, 16)
    torch.testing.assert_close(r1.directions.norm(dim=1), torch.ones(16))


def test_bad_input_is_a_clear_error():
    d = SlicedWasserstein()
    with pytest.raises(InputError, match=r"same shape, got \(2, 3, 4, 4\) and \(2, 3, 4, 5\)"):
        d(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 5))
    with pytest.raises(InputError, match="at least 2 dimensions"):
        d(torch.rand(5), torch.rand(5))
    with pytest.raises(InputError, match="floating-point"):
        d(torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(SpecError, match="no spatial map"):
        d(torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3, 3), spatial=True)
    with pytest.raises(InputError, match="p must be 1 or 2, got 3"):
        SlicedWasserstein(p=3)
    with pytest.raises(InputError, match="built for 8 channels, got features of shape"):
        SlicedProjection(8)(torch.rand(1, 4, 3, 3))
    with pytest.raises(InputError, match="number of projections must be an int >= 1, got 0"):
        SlicedProjection(8, projections=0)


def test_spec_strings_and_loss():
    loss = percept.PerceptualLoss("alexnet:conv1,conv2/sliced/swd", weights=None)
    x = torch.rand(2, 3, 48, 48)
    target = torch.rand(2, 3, 48, 48)
    assert float(loss(x, x.clone())) == 0.0
    xg = x.clone().requires_grad_(True)
    value = loss(xg, target)
    value.backward()
    assert value > 0 and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    # Axis-aligned slices on the raw features work through the same distance.
    d = percept.perceptual_distance(x, target, "alexnet:conv2/raw/swd", weights=None)
    assert d.shape == (2,) and (d > 0).all()
    with pytest.raises(SpecError, match="no spatial map"):
        percept.perceptual_distance(x, target, "alexnet:conv2/sliced/swd", weights=None, spatial=True)


def test_swd_tells_textures_apart_where_mse_sees_a_shift():
    # A texture and a shifted copy are the same texture: swd on features ~ 0 while mse is large.
    torch.manual_seed(0)  # the random AlexNet below
    g = torch.Generator().manual_seed(0)
    tile = torch.rand(1, 3, 8, 8, generator=g)
    texture = tile.repeat(1, 1, 8, 8)
    shifted = torch.roll(texture, shifts=(4, 4), dims=(2, 3))
    noise = torch.rand(1, 3, 64, 64, generator=g)
    swd = percept.build_pipeline("alexnet:conv1/sliced/swd", weights=None)
    mse = percept.build_pipeline("alexnet:conv1/raw/mse", weights=None)
    with torch.no_grad():
        swd_ratio = swd(texture, shifted) / swd(texture, noise)
        mse_ratio = mse(texture, shifted) / mse(texture, noise)
    assert swd_ratio < 0.2 and mse_ratio > 0.5, (swd_ratio, mse_ratio)
