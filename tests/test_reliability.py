"""Reliability: bad input refused everywhere, nothing half-done, numerics finite, frozen stays frozen.

The counts quoted in the project notes come from this file: ``pytest tests/test_reliability.py -q``
(every parametrised case is one bad input tried or one property verified).
"""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import percept
from percept import InputError, PerceptualLoss, PerceptualMetric, perceptual_distance
from percept.errors import RegistrationError
from percept.ops import feature_distance

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")

SPEC = "alexnet:conv1,conv2"
GOOD = torch.rand(2, 3, 48, 48)


def _nan() -> torch.Tensor:
    t = GOOD.clone()
    t[1, 2, 3, 4] = float("nan")
    return t


def _inf() -> torch.Tensor:
    t = GOOD.clone()
    t[0, 0, 0, 0] = float("inf")
    return t


# (name, x, y, substring the message must contain)
BAD_INPUTS = [
    ("rank 3", GOOD[0], GOOD[0], "got 3 dimensions"),
    ("rank 5", GOOD[None], GOOD[None], "got 5 dimensions"),
    ("2 channels", GOOD[:, :2], GOOD[:, :2], "1 or 3 channels"),
    ("4 channels", torch.rand(2, 4, 48, 48), torch.rand(2, 4, 48, 48), "1 or 3 channels"),
    ("uint8", (GOOD * 255).byte(), (GOOD * 255).byte(), "floating-point"),
    ("int64", (GOOD * 255).long(), (GOOD * 255).long(), "floating-point"),
    ("bool", GOOD > 0.5, GOOD > 0.5, "floating-point"),
    ("0..255 as [0, 1]", GOOD * 255, GOOD * 255, "divide by 255"),
    ("[-1, 1] as [0, 1]", GOOD * 2 - 1, GOOD * 2 - 1, "input_range=(-1, 1)"),
    ("slightly above 1", GOOD + 0.01, GOOD, "values in [0, 1]"),
    ("NaN in x", _nan(), GOOD, "NaN or Inf"),
    ("NaN in y", GOOD, _nan(), "NaN or Inf"),
    ("Inf in x", _inf(), GOOD, "NaN or Inf"),
    ("empty batch", GOOD[:0], GOOD[:0], "empty batch"),
    ("batch mismatch", GOOD, GOOD[:1], "same shape"),
    ("size mismatch", GOOD, GOOD[..., :40], "same shape"),
    ("dtype mismatch", GOOD, GOOD.double(), "same dtype"),
    ("too small", torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), "at least"),
    ("too small in one side", torch.rand(2, 3, 48, 5), torch.rand(2, 3, 48, 5), "at least"),
    ("not a tensor", GOOD.numpy(), GOOD.numpy(), "torch.Tensor"),
    ("list", [[0.5]], [[0.5]], "torch.Tensor"),
]


@functools.cache
def loss_fn() -> PerceptualLoss:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PerceptualLoss(SPEC, weights=None)


@functools.cache
def lpips_fn():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return percept.build_pipeline("lpips-alex", weights=None)


def _entry_points():
    def metric(x, y):
        m = PerceptualMetric(SPEC, weights=None, reduction="none")
        m.update(GOOD, GOOD)
        before = [t.clone() for t in m.scores]
        try:
            m.update(x, y)
        finally:
            assert len(m.scores) == len(before) and all(
                torch.equal(a, b) for a, b in zip(m.scores, before, strict=True)
            )

    def metric_mean(x, y):
        m = PerceptualMetric(SPEC, weights=None)
        m.update(GOOD, GOOD.flip(0))
        before = (m.sum_scores.clone(), m.total.clone())
        try:
            m.update(x, y)
        finally:
            assert torch.equal(m.sum_scores, before[0]) and torch.equal(m.total, before[1])

    return {
        "loss": lambda x, y: loss_fn()(x, y),
        "lpips": lambda x, y: lpips_fn()(x, y),
        "functional": lambda x, y: perceptual_distance(x, y, SPEC, weights=None),
        "metric(none)": metric,
        "metric(mean)": metric_mean,
    }


ENTRY_POINTS = _entry_points()


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize(("case", "x", "y", "needle"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_with_a_clear_message(entry, case, x, y, needle):
    with pytest.raises(InputError) as info:
        ENTRY_POINTS[entry](x, y)
    assert needle in str(info.value), str(info.value)


def test_device_mismatch_is_named():
    meta = torch.empty(2, 3, 48, 48, device="meta")
    with pytest.raises(InputError, match="on the same device, got cpu and meta"):
        percept.pipeline.check_pair(GOOD, meta)


# -- frozen parts stay frozen ---------------------------------------------------------------------


def test_optimiser_over_a_model_holding_the_loss_cannot_change_frozen_weights():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = PerceptualLoss("lpips-alex", weights=None)
    model = torch.nn.ModuleDict({"net": torch.nn.Conv2d(3, 3, 3, padding=1), "loss": loss})
    frozen = {k: v.detach().clone() for k, v in loss.named_parameters()}
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
    net_before = model["net"].weight.detach().clone()
    x = torch.rand(2, 3, 48, 48)
    for _ in range(3):
        model.train()
        optimiser.zero_grad()
        out = torch.sigmoid(model["net"](x))
        model["loss"](out, x).backward()
        optimiser.step()
    assert not torch.equal(model["net"].weight, net_before)
    for k, v in loss.named_parameters():
        assert torch.equal(v, frozen[k]), k
        assert not v.requires_grad and v.grad is None, k
    assert all(not m.training for m in loss.pipeline.backbone.modules())


# -- numerics ---------------------------------------------------------------------------------------

COMBOS = [(r, d) for r in ("raw", "unit") for d in ("mse", "l1", "l2", "cosine")]


@functools.cache
def combo(readout: str, distance: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return percept.build_pipeline(f"{SPEC}/{readout}/{distance}", weights=None)


@pytest.mark.parametrize(("readout", "distance"), COMBOS)
@pytest.mark.parametrize("fill", [0.0, 0.5, 1.0, None])
def test_identical_and_constant_images_give_zero_and_finite_gradients(readout, distance, fill):
    pipeline = combo(readout, distance)
    x = torch.rand(2, 3, 40, 40) if fill is None else torch.full((2, 3, 40, 40), fill)
    x.requires_grad_()
    d = pipeline(x, x.detach())
    assert torch.all(d.abs() <= 1e-6), d
    d.sum().backward()
    assert torch.isfinite(x.grad).all()


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(COMBOS),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=0, max_value=2**16),
)
def test_arbitrary_images_give_finite_non_negative_distances(combination, a, b, seed):
    pipeline = combo(*combination)
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(1, 3, 36, 36, generator=g) * a).requires_grad_()
    y = torch.rand(1, 3, 36, 36, generator=g) * b
    d = pipeline(x, y)
    assert torch.isfinite(d).all() and (d >= 0).all()
    d.sum().backward()
    assert torch.isfinite(x.grad).all()


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["sq", "abs", "cos"]),
    st.booleans(),
    st.sampled_from([1e-18, 1e-6, 1.0, 1e6, 1e12]),
    st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
    st.integers(min_value=0, max_value=2**16),
)
def test_feature_scales_and_half_ranges_stay_finite(kind, normalize, scale, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 7, 3, 4, generator=g) * scale
    y = torch.randn(2, 7, 3, 4, generator=g) * scale
    if dtype != torch.float32:
        finfo = torch.finfo(dtype)
        x, y = x.clamp(-finfo.max, finfo.max).to(dtype), y.clamp(-finfo.max, finfo.max).to(dtype)
    x.requires_grad_()
    d = feature_distance(x, y, normalize=normalize, kind=kind, backend="eager")
    assert d.dtype == torch.float32  # half inputs accumulate in float32: (6.5e4)^2 * 7 still fits
    assert torch.isfinite(d).all() and (d >= 0).all()
    d.sum().backward()
    # Gradients come back in the input's dtype: finite wherever the true (float32) gradient fits it.
    # (Unit-normalising features of norm 1e-6 has gradients near 1e6, beyond float16: GradScaler's case.)
    x32 = x.detach().float().requires_grad_()
    feature_distance(x32, y.float(), normalize=normalize, kind=kind, backend="eager").sum().backward()
    if x32.grad.abs().max() < torch.finfo(x.dtype).max:
        assert torch.isfinite(x.grad.float()).all()


# -- determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["lpips-alex", "alexnet:conv1,conv2/unit/cosine"])
def test_same_input_same_output(spec):
    pipeline = lpips_fn() if spec == "lpips-alex" else combo("unit", "cosine")
    x, y = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    assert torch.equal(pipeline(x, y), pipeline(x, y))


# -- broken plugins ----------------------------------------------------------------------------


def test_backbone_with_wrong_taps_names_its_plugin():
    from percept.backbones.base import Backbone

    class WrongTaps:
        @percept.hookimpl
        def register_backbones(self, register):
            def build(weights=None, **kw):
                net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
                return Backbone("wrong", net, [("0", net[0])], [("conv", "7", True)])

            register("wrong-taps", build)

    registry = percept.registry.get_registry()
    registry.register_plugin(WrongTaps(), "wrong-taps-plugin")
    try:
        with pytest.raises(RegistrationError, match="'wrong-taps' of plugin 'wrong-taps-plugin' failed to build"):
            percept.create_backbone("wrong-taps")
        assert percept.create_backbone("alexnet", weights=None) is not None  # built-ins unaffected
    finally:
        registry.unregister_plugin("wrong-taps-plugin")
