"""E-LPIPS' transformation ensemble (percept.ensemble, the elpips(...) spec form, the e-lpips-* presets).

The laws of each transformation are checked on many draws from a fixed generator (chi-square tests at
a 1e-3 level, so a correct law fails about once in a thousand runs of a new seed; the seeds are fixed),
and the geometric operations against NumPy's padding as an independent oracle.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from percept import PerceptualLoss, PerceptualMetric, perceptual_distance
from percept.ensemble import (
    EVAL_SAMPLES,
    Ensemble,
    apply_gain,
    box_downscale,
    downscaled_side,
    dropout_masks,
    flip,
    largest_scale,
    permute_channels,
    sample_scale,
    sample_transformation,
    scale_probabilities,
    translate,
)
from percept.errors import InputError, SpecError
from percept.pipeline import build_pipeline
from percept.spec import parse_spec

P_MIN = 1e-3

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _quiet_random_weights():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def images(n=2, size=24, seed=0, channels=3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g)


def draws(count, n=1, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    return [sample_transformation(g, n, **kw) for _ in range(count)]


# --- the laws of the draws -------------------------------------------------------------------------


def test_downscale_factor_law_is_inverse_square():
    g = torch.Generator().manual_seed(1)
    counts = np.bincount([sample_scale(g, 8) for _ in range(6000)], minlength=9)[1:]
    expected = scale_probabilities(8).numpy() * 6000
    assert expected[0] / expected[1] == pytest.approx(4.0)
    assert stats.chisquare(counts, expected).pvalue > P_MIN


def test_downscale_factor_law_renormalised_when_capped():
    g = torch.Generator().manual_seed(2)
    counts = np.bincount([sample_scale(g, 3) for _ in range(3000)], minlength=4)[1:]
    probs = np.array([1, 1 / 4, 1 / 9]) / (1 + 1 / 4 + 1 / 9)
    assert stats.chisquare(counts, probs * 3000).pvalue > P_MIN


def test_scale_offset_is_uniform_below_the_scale():
    ts = [t for t in draws(4000, seed=3) if t.scale == 2]
    offsets = np.array([t.scale_offset for t in ts])
    assert set(offsets.flatten().tolist()) == {0, 1}
    for axis in range(2):
        assert stats.chisquare(np.bincount(offsets[:, axis], minlength=2)).pvalue > P_MIN


def test_translation_is_uniform_over_0_to_7_per_image_and_axis():
    t = sample_transformation(torch.Generator().manual_seed(4), 4000)
    offsets = t.offsets.numpy()
    assert offsets.min() == 0 and offsets.max() == 7
    for axis in range(2):
        assert stats.chisquare(np.bincount(offsets[:, axis], minlength=8)).pvalue > P_MIN


def test_flips_uniform_over_four_and_transpose_fair():
    t = sample_transformation(torch.Generator().manual_seed(5), 4000)
    assert stats.chisquare(np.bincount(t.flips.numpy(), minlength=4)).pvalue > P_MIN
    transposed = sum(t.transpose for t in draws(2000, seed=6))
    assert stats.binomtest(transposed, 2000, 0.5).pvalue > P_MIN


def test_colour_permutation_uniform_over_the_six():
    t = sample_transformation(torch.Generator().manual_seed(7), 6000)
    assert (t.permutations.sort(dim=1).values == torch.arange(3)).all()  # each row is a permutation
    codes = (t.permutations * torch.tensor([9, 3, 1])).sum(1).numpy()
    values, counts = np.unique(codes, return_counts=True)
    assert len(values) == 6
    assert stats.chisquare(counts).pvalue > P_MIN


def test_gain_is_0_2_plus_0_8_uniform():
    gains = sample_transformation(torch.Generator().manual_seed(8), 5000).gains
    assert gains.shape == (5000, 3)
    assert gains.min() >= 0.2 and gains.max() < 1.0
    u = ((gains - 0.2) / 0.8).flatten().numpy()
    assert stats.kstest(u, "uniform").pvalue > P_MIN


def test_dropout_keep_rate_and_values():
    masks = dropout_masks(torch.Generator().manual_seed(9), {"a": torch.zeros(4, 64, 32, 32)}, keep=0.99)
    m = masks["a"]
    kept = int((m > 0).sum())
    assert torch.unique(m).tolist() == [0.0, pytest.approx(1 / 0.99)]
    assert stats.binomtest(kept, m.numel(), 0.99).pvalue > P_MIN


# --- each operation against an independent oracle ----------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "offset", "size"), [(2, (0, 1), (9, 12)), (3, (2, 0), (10, 10)), (5, (4, 3), (17, 11))]
)
def test_box_downscale_is_reflect_pad_then_box_mean(scale, offset, size):
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    h, w = size
    full_h, full_w = downscaled_side(h, scale) * scale, downscaled_side(w, scale) * scale
    pad = ((0, 0), (0, 0), (offset[0], full_h - h - offset[0]), (offset[1], full_w - w - offset[1]))
    padded = np.pad(x.numpy(), pad, mode="reflect")
    oracle = padded.reshape(2, 3, full_h // scale, scale, full_w // scale, scale).mean(axis=(3, 5))
    np.testing.assert_allclose(box_downscale(x, scale, offset).numpy(), oracle, rtol=1e-12)
    assert box_downscale(x, 1, (0, 0)) is x


def test_translate_pads_7_minus_d_before_and_d_after():
    x = torch.rand(3, 2, 9, 11, dtype=torch.float64)
    offsets = torch.tensor([[0, 7], [3, 5], [7, 0]])
    out = translate(x, offsets, 7)
    assert out.shape == (3, 2, 16, 18)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        oracle = np.pad(x[i].numpy(), ((0, 0), (7 - dy, dy), (7 - dx, dx)), mode="reflect")
        np.testing.assert_array_equal(out[i].numpy(), oracle)


def test_flip_codes_and_permutation_and_gain():
    x = torch.rand(4, 3, 5, 6)
    out = flip(x, torch.tensor([0, 1, 2, 3]))
    for i, oracle in enumerate((x[0].flip(-1), x[1].flip(-2), x[2].flip(-1).flip(-2), x[3])):
        assert torch.equal(out[i], oracle)
    perm = torch.tensor([[2, 0, 1], [0, 1, 2], [1, 2, 0], [2, 1, 0]])
    permuted = permute_channels(x, perm)
    for i in range(4):
        assert torch.equal(permuted[i], x[i, perm[i]])
    gains = torch.rand(4, 3)
    assert torch.allclose(apply_gain(x, gains), x * gains[:, :, None, None])
    # In [-1, 1] the gain acts on the image mapped to [0, 1]: lo + (x - lo) g.
    assert torch.allclose(apply_gain(2 * x - 1, gains, (-1.0, 1.0)), 2 * (x * gains[:, :, None, None]) - 1)


def test_largest_scale_keeps_the_network_fed():
    assert largest_scale(256, 256, min_size=32) == 8
    assert largest_scale(64, 64, min_size=31) == 2  # 64 -> 32 (+7 = 39 >= 31); 64 -> 22 (+7 = 29) is too small
    for h, w, m in [(8, 8, 1), (13, 40, 15), (64, 33, 31), (100, 100, 63)]:
        s = largest_scale(h, w, m)
        side = downscaled_side(min(h, w), s)
        assert side > 7 and side + 7 >= m and (s == 1 or 2 * s - 2 < min(h, w))
    with pytest.raises(InputError, match="at least 8 px"):
        largest_scale(7, 64, 1)


def test_grey_images_have_one_channel_gain_and_no_permutation():
    t = sample_transformation(torch.Generator().manual_seed(0), 3, channels=1)
    assert t.permutations.shape == (3, 1) and t.gains.shape == (3, 1)
    assert t.apply(torch.rand(3, 1, 16, 16)).shape[1] == 1


# --- the ensemble around a pipeline -------------------------------------------------------------------

SPECS = [
    "pixel",
    "pixel/raw/l1",
    "alexnet:conv1,conv2/unit/l2",
    "squeezenet1_1:relu1,fire3/unit/l2",
    "resnet18:layer1/meanstd/l2",  # a readout the fused op does not take
    "lpips-alex",
]


@pytest.fixture(scope="module")
def pipelines():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {s: build_pipeline(s, weights=None) for s in SPECS}


@pytest.mark.parametrize("spec", SPECS)
def test_any_spec_identical_images_zero_deterministic_and_non_negative(spec, pipelines):
    p = build_pipeline(f"elpips({spec})", weights=None, ensemble=Ensemble(n=3, seed=11))
    assert p.spec == f"elpips({pipelines[spec].spec})" and p.ensemble == Ensemble(n=3, seed=11)
    x, y = images(size=40), images(size=40, seed=1)
    d = p(x, y)
    assert d.shape == (2,) and bool((d > 0).all()) and bool(torch.isfinite(d).all())
    assert torch.equal(d, p(x, y))  # same seed, same value
    other = build_pipeline(f"elpips({spec})", weights=None, ensemble=Ensemble(n=3, seed=12))
    other.backbone.load_state_dict(p.backbone.state_dict())  # the same random network, other draws
    assert not torch.equal(d, other(x, y))
    assert torch.allclose(p(x, x.clone()), torch.zeros(2), atol=1e-6)


def test_mean_of_n_draws_is_the_average_of_each_transformed_pair(pipelines):
    plain = pipelines["alexnet:conv1,conv2/unit/l2"]
    p = build_pipeline("alexnet:conv1,conv2/unit/l2", weights=None, ensemble=Ensemble(n=4, seed=3, keep=1.0))
    p.backbone.load_state_dict(plain.backbone.state_dict())
    x, y = images(size=32), images(size=32, seed=1)
    ts = Ensemble(seed=3).draws(x.shape, p.min_size, torch.Generator().manual_seed(3), 4)
    oracle = torch.stack([plain(t.apply(x), t.apply(y)) for t in ts]).mean(0)
    assert torch.allclose(p(x, y), oracle, rtol=1e-5, atol=1e-7)


def test_spy_both_images_get_the_same_transformation_and_dropout(monkeypatch):
    p = build_pipeline("elpips(alexnet:conv1,conv2/unit/l2)", weights=None, ensemble=Ensemble(n=3, seed=5, keep=0.5))
    x, y = images(size=40), images(size=40, seed=1)
    seen, masks, masked = [], [], []
    features, distances = p.features, p.feature_distances
    real_masks = dropout_masks

    def spy_features(a, b):
        seen.append((a, b, *features(a, b)))
        return seen[-1][2], seen[-1][3]

    def spy_masks(*args, **kw):
        masks.append(real_masks(*args, **kw))
        return masks[-1]

    def spy_distances(fx, fy, **kw):
        masked.append((fx, fy))
        return distances(fx, fy, **kw)

    monkeypatch.setattr(p, "features", spy_features)
    monkeypatch.setattr(p, "feature_distances", spy_distances)
    monkeypatch.setattr("percept.ensemble.dropout_masks", spy_masks)
    p(x, y)
    ts = Ensemble().draws(x.shape, p.min_size, torch.Generator().manual_seed(5), 3)
    assert len(seen) == len(masks) == len(masked) == 3
    for t, (a, b, fx, fy), m, (mx, my) in zip(ts, seen, masks, masked, strict=True):
        assert torch.equal(a, t.apply(x)) and torch.equal(b, t.apply(y))
        for tap in p.taps:
            assert torch.equal(mx[tap], fx[tap] * m[tap]) and torch.equal(my[tap], fy[tap] * m[tap])
            assert 0.3 < float((m[tap] > 0).float().mean()) < 0.7


def test_spread_of_the_mean_shrinks_as_one_over_sqrt_n(pipelines):
    x, y = images(n=1, size=32), images(n=1, size=32, seed=1)
    spread = {}
    p = build_pipeline("pixel", weights=None)
    for n in (1, 9):
        values = []
        for s in range(50):
            p.ensemble = Ensemble(n=n, seed=s)
            values.append(p(x, y))
        spread[n] = float(torch.cat(values).std())
    ratio = spread[1] / spread[9]
    assert 2.0 < ratio < 4.5, f"std ratio {ratio:.2f}, expected about sqrt(9) = 3"


def test_metric_calls_are_seeded_loss_calls_are_fresh():
    p = build_pipeline("elpips(pixel)", weights=None)
    assert p.ensemble.plan(graph=False)[0] == EVAL_SAMPLES and p.ensemble.plan(graph=True)[0] == 1
    p.ensemble = Ensemble(n=3)  # seed None, fewer draws than the default 200
    x, y = images(size=16), images(size=16, seed=1)
    assert torch.equal(p(x, y), p(x, y))  # a metric call: seed 0
    assert torch.equal(p(x, y), build_pipeline("pixel", ensemble=Ensemble(n=3, seed=0))(x, y))
    xr = x.clone().requires_grad_()
    torch.manual_seed(0)
    a, b = p(xr, y), p(xr, y)
    torch.manual_seed(0)
    assert not torch.equal(a, b) and torch.equal(a, p(xr, y))  # fresh draws, governed by torch.manual_seed
    seeded = build_pipeline("elpips(pixel)", weights=None, ensemble=Ensemble(seed=4))
    assert torch.equal(seeded(xr, y), seeded(xr, y))


def test_gradient_flows_to_the_first_input_only():
    loss = PerceptualLoss("lpips-alex", weights=None, ensemble=Ensemble(n=2))
    x, y = images(size=40).requires_grad_(), images(size=40, seed=1)
    loss(x, y).backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0
    assert y.grad is None


def test_loss_metric_functional_and_presets_agree():
    x, y = images(size=40), images(size=40, seed=1)
    e = Ensemble(n=2, seed=7)
    base = build_pipeline("lpips-alex", weights=None)
    preset = build_pipeline("e-lpips-alex", weights=None, n=2, seed=7)
    assert preset.spec == "e-lpips-alex" and preset.ensemble == e
    wrapped = build_pipeline("elpips(lpips-alex)", weights=None, ensemble=e)
    for p in (preset, wrapped):
        p.backbone.load_state_dict(base.backbone.state_dict())
    expected = preset(x, y)
    assert torch.allclose(wrapped(x, y), expected)
    metric = PerceptualMetric("elpips(lpips-alex)", weights=None, ensemble=e, reduction="none")
    metric.pipeline.backbone.load_state_dict(base.backbone.state_dict())
    assert torch.allclose(metric(x, y), expected)
    loss = PerceptualLoss("e-lpips-alex", weights=None, n=2, seed=7, reduction="none")
    loss.pipeline.backbone.load_state_dict(base.backbone.state_dict())
    assert torch.allclose(loss(x, y), expected)
    d = perceptual_distance(x, y, "elpips(pixel)", ensemble=Ensemble(n=2, seed=1))
    assert d.shape == (2,)


def test_input_range_minus_one_one_gives_the_same_value():
    x, y = images(size=32), images(size=32, seed=1)
    e = Ensemble(n=2, seed=2)
    a = build_pipeline("lpips-alex", weights=None, ensemble=e)
    b = build_pipeline("lpips-alex", weights=None, ensemble=e, input_range=(-1.0, 1.0))
    b.backbone.load_state_dict(a.backbone.state_dict())
    assert torch.allclose(a(x, y), b(2 * x - 1, 2 * y - 1), rtol=1e-4, atol=1e-6)


def test_small_images_draw_only_scales_the_network_can_take():
    p = build_pipeline("alexnet:conv1,conv2/unit/l2", weights=None, ensemble=Ensemble(n=20, seed=0))
    x, y = images(size=20), images(size=20, seed=1)
    top = largest_scale(20, 20, p.min_size)
    assert 1 < top < 8
    assert {t.scale for t in p.ensemble.draws(x.shape, p.min_size, n=200)} <= set(range(1, top + 1))
    assert bool(torch.isfinite(p(x, y)).all())
    with pytest.raises(InputError):
        build_pipeline("elpips(pixel)", weights=None)(images(size=6), images(size=6))


def test_spec_form_round_trips_and_refuses_what_it_cannot_mean():
    for text in ("elpips(lpips-alex)", "elpips(vgg16:conv1,conv3=0.5/unit/l2)", "elpips(pixel)"):
        parsed = parse_spec(text)
        assert parsed.ensemble == "elpips" and str(parsed) == text and parse_spec(str(parsed)) == parsed
    with pytest.raises(SpecError, match="Did you mean 'elpips'"):
        parse_spec("elpip(vgg16)")
    with pytest.raises(SpecError, match="one ensemble in another"):
        parse_spec("elpips(elpips(vgg16))")
    with pytest.raises(SpecError, match="ensemble already"):
        build_pipeline("elpips(e-lpips-alex)", weights=None)
    with pytest.raises(SpecError, match="Did you mean 'elpips'"):
        build_pipeline("pixel", ensemble="elpip")
    with pytest.raises(SpecError, match="no spatial map"):
        build_pipeline("elpips(pixel)")(images(), images(seed=1), spatial=True)


@pytest.mark.parametrize(
    ("kw", "match"), [({"n": 0}, "n must be"), ({"seed": 1.5}, "seed must"), ({"keep": 0.0}, "keep must")]
)
def test_bad_settings_fail_clearly(kw, match):
    with pytest.raises(SpecError, match=match):
        Ensemble(**kw)


def test_identical_images_give_zero_with_every_transformation_on():
    p = build_pipeline("lpips-alex", weights=None, ensemble=Ensemble(n=5, seed=0))
    x = images(n=3, size=64)
    assert float(p(x, x.clone()).abs().max()) <= 1e-6
    assert math.isfinite(float(p(x, images(n=3, size=64, seed=1)).sum()))
