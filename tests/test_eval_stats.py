"""Correlation statistics, the VQEG logistic, 2AFC agreement and the bootstrap by reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from percept.errors import InputError
from percept.eval.stats import (
    FitError,
    bootstrap_ci,
    correlations,
    fit_logistic,
    krocc,
    logistic5,
    plcc,
    rmse,
    srocc,
    two_afc_agreement,
)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    x = rng.random(200)
    y = 5 / (1 + np.exp(-6 * (x - 0.4))) + 0.2 * rng.standard_normal(200)
    return x, y


def test_against_scipy(data):
    x, y = data
    assert srocc(x, y) == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    assert krocc(x, y) == pytest.approx(sps.kendalltau(x, y).statistic, abs=1e-12)
    assert plcc(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert rmse(x, y) == pytest.approx(np.sqrt(np.mean((x - y) ** 2)))


def test_known_values():
    assert srocc([1, 2, 3, 4], [10, 20, 30, 25]) == pytest.approx(0.8)
    assert krocc([1, 2, 3, 4], [10, 20, 30, 25]) == pytest.approx(2 / 3)
    assert plcc([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert srocc([1, 1, 1], [1, 2, 3]) == 0.0


def test_logistic_recovers_a_planted_curve():
    x = np.linspace(-2, 3, 300)
    truth = (4.0, 3.0, 0.5, 0.2, 1.0)
    y = logistic5(x, *truth)
    curve = fit_logistic(x, y)
    np.testing.assert_allclose(curve(x), y, atol=1e-4)
    # Decreasing relation (distance vs MOS) fits as well.
    curve = fit_logistic(x, -y)
    np.testing.assert_allclose(curve(x), -y, atol=1e-4)


def test_logistic_improves_plcc_on_a_nonlinear_relation(data):
    x, y = data
    out = correlations(x, y, higher_is_better=False)
    assert out["plcc_logistic"] > abs(out["plcc"]) > 0.5
    assert out["rmse_logistic"] < out["rmse"]
    assert out["fit_failed"] == 0


def test_logistic_failure_is_clear():
    with pytest.raises(FitError, match="constant metric"):
        fit_logistic(np.ones(10), np.arange(10.0))
    out = correlations(np.ones(10), np.arange(10.0))
    assert out["fit_failed"] == 1 and np.isnan(out["plcc_logistic"])


def test_sign_follows_score_kind():
    dist = np.array([0.1, 0.2, 0.35, 0.3, 0.9])
    mos = 9 - 10 * dist
    dmos = 10 * dist
    for scores, hib in ((mos, True), (dmos, False)):
        out = correlations(dist, scores, higher_is_better=hib, logistic=False)
        assert out["srocc"] == pytest.approx(1.0) and out["plcc"] == pytest.approx(1.0)
        sim = correlations(-dist, scores, higher_is_better=hib, lower_is_better_metric=False, logistic=False)
        assert sim["srocc"] == pytest.approx(1.0)


def test_bad_input():
    with pytest.raises(InputError, match="same length, got 3 and 2"):
        srocc([1, 2, 3], [1, 2])
    with pytest.raises(InputError, match="at least 3 pairs"):
        plcc([1, 2], [1, 2])
    with pytest.raises(InputError, match="NaN or Inf"):
        plcc([1, np.nan, 2], [1, 2, 3])


def test_two_afc():
    assert two_afc_agreement([0.1, 0.5], [0.2, 0.4], [0.0, 1.0]) == 1.0
    assert two_afc_agreement([0.1, 0.5], [0.2, 0.4], [1.0, 0.0]) == 0.0
    assert two_afc_agreement([0.3], [0.3], [0.9]) == 0.5
    assert two_afc_agreement([0.1], [0.2], [0.25]) == pytest.approx(0.75)
    with pytest.raises(InputError, match=r"fractions in \[0, 1\]"):
        two_afc_agreement([0.1], [0.2], [1.5])


def test_bootstrap_by_reference_is_wider_than_by_pair():
    # The correlation comes from 8 reference-level offsets shared by metric and score: resampling
    # references sees that it rests on 8 draws, resampling pairs believes it rests on 200.
    rng = np.random.default_rng(0)
    refs = np.repeat(np.arange(8), 25)
    offset = rng.standard_normal(8)[refs]
    x = offset + 0.5 * rng.standard_normal(refs.size)
    y = offset + 0.5 * rng.standard_normal(refs.size)
    est, lo, hi = bootstrap_ci(lambda ix: plcc(x[ix], y[ix]), refs, n_boot=300)
    assert lo <= est <= hi
    _, lo_pair, hi_pair = bootstrap_ci(lambda ix: plcc(x[ix], y[ix]), np.arange(refs.size), n_boot=300)
    assert hi - lo > hi_pair - lo_pair
    with pytest.raises(InputError, match="at least 2 groups"):
        bootstrap_ci(lambda ix: 0.0, np.zeros(5))
