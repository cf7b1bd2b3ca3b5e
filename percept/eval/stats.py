"""Agreement between a metric and human judgements: rank and linear correlations, the VQEG logistic, 2AFC,
JND mAP.

Sign convention: a *distance* grows as quality falls, so it correlates negatively with MOS and
positively with DMOS. :func:`correlations` orients both sides so that a metric that agrees with people
gets positive SROCC/KROCC/PLCC whatever the score kind: pass ``higher_is_better`` (the scores' kind)
and ``lower_is_better_metric`` (True for distances, False for similarities such as SSIM).

The 5-parameter logistic of the VQEG (used before PLCC and RMSE)::

    Q(x) = b1 * (1/2 - 1 / (1 + exp(b2 * (x - b3)))) + b4 * x + b5

Example:
    >>> import numpy as np
    >>> d = np.array([0.1, 0.3, 0.2, 0.8, 0.5]); mos = np.array([8.0, 6.5, 7.0, 2.0, 4.1])
    >>> round(correlations(d, mos, higher_is_better=True)["srocc"], 3)
    1.0
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from percept.errors import InputError, PerceptError

MAX_SLOPE = 100.0
# Fewer points than this leave the 5 parameters (nearly) undetermined: no fit, reported as failed.
MIN_FIT_POINTS = 10


class FitError(PerceptError, RuntimeError):
    """The logistic fit did not converge from any starting point."""


def _vectors(pred, target, name: str = "pred") -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=float).reshape(-1)
    target = np.asarray(target, dtype=float).reshape(-1)
    if pred.shape != target.shape:
        raise InputError(f"expected {name} and target of the same length, got {pred.size} and {target.size}")
    if pred.size < 3:
        raise InputError(f"expected at least 3 pairs to correlate, got {pred.size}")
    if not (np.isfinite(pred).all() and np.isfinite(target).all()):
        raise InputError(f"{name} or target holds NaN or Inf ({np.count_nonzero(~np.isfinite(pred))} in {name})")
    return pred, target


def _scipy_correlation(name: str, pred: ArrayLike, target: ArrayLike) -> float:
    """``scipy.stats.<name>`` (``spearmanr``, ``kendalltau``, ``pearsonr``) of two checked vectors; 0 when
    either side is constant (scipy would warn and return NaN)."""
    from scipy import stats

    pred, target = _vectors(pred, target)
    if np.ptp(pred) == 0 or np.ptp(target) == 0:
        return 0.0
    return float(getattr(stats, name)(pred, target).statistic)


def srocc(pred: ArrayLike, target: ArrayLike) -> float:
    """Spearman rank-order correlation (ties get average ranks), in [-1, 1].

    Args:
        pred, target: ``(N,)`` values, N >= 3, finite.

    Example:
        >>> round(srocc([1, 2, 3, 4], [10, 20, 30, 25]), 6)
        0.8
    """
    return _scipy_correlation("spearmanr", pred, target)


def krocc(pred: ArrayLike, target: ArrayLike) -> float:
    """Kendall rank-order correlation (tau-b), in [-1, 1].

    Example:
        >>> round(krocc([1, 2, 3, 4], [10, 20, 30, 25]), 4)
        0.6667
    """
    return _scipy_correlation("kendalltau", pred, target)


def plcc(pred: ArrayLike, target: ArrayLike) -> float:
    """Pearson linear correlation, in [-1, 1] (0 when either side is constant).

    Example:
        >>> round(plcc([1, 2, 3], [2, 4, 6]), 6)
        1.0
    """
    return _scipy_correlation("pearsonr", pred, target)


def rmse(pred: ArrayLike, target: ArrayLike) -> float:
    """Root mean squared difference ``sqrt(mean((pred - target)^2))``, in the units of ``target``.

    Example:
        >>> rmse([1, 2, 3], [1, 2, 5])
        1.1547005383792515
    """
    pred, target = _vectors(pred, target)
    return float(np.sqrt(np.mean((pred - target) ** 2)))


def logistic5(x, b1: float, b2: float, b3: float, b4: float, b5: float):
    """The VQEG 5-parameter logistic ``b1 * (1/2 - 1/(1 + exp(b2 (x - b3)))) + b4 x + b5``.

    Example:
        >>> float(logistic5(0.0, 2.0, 1.0, 0.0, 0.0, 1.0))
        1.0
    """
    z = np.clip(b2 * (np.asarray(x, dtype=float) - b3), -500, 500)
    return b1 * (0.5 - 1.0 / (1.0 + np.exp(z))) + b4 * np.asarray(x, dtype=float) + b5


def _logistic5_jac(x, b1: float, b2: float, b3: float, b4: float, b5: float):
    x = np.asarray(x, dtype=float)
    s = 1.0 / (1.0 + np.exp(np.clip(b2 * (x - b3), -500, 500)))
    slope = s * (1.0 - s)
    return np.stack([0.5 - s, b1 * slope * (x - b3), -b1 * slope * b2, x, np.ones_like(x)], axis=1)


def _logistic_starts(z: np.ndarray, target: np.ndarray) -> list[list[float]]:
    """Starting points: the best of a grid over (slope, centre), with the linear parameters solved
    exactly for each (the model is linear in b1, b4, b5), then the classic VQEG start."""
    centres = np.quantile(z, np.linspace(0.05, 0.95, 19))
    slopes = np.concatenate([-np.geomspace(0.25, 32, 8), np.geomspace(0.25, 32, 8)])
    b2, b3 = (g.reshape(-1) for g in np.meshgrid(slopes, centres))
    s = 1.0 / (1.0 + np.exp(np.clip(b2[:, None] * (z[None] - b3[:, None]), -500, 500)))
    design = np.stack([0.5 - s, np.broadcast_to(z, s.shape), np.ones_like(s)], axis=2)  # (K, N, 3)
    gram = design.transpose(0, 2, 1) @ design + 1e-9 * np.eye(3)
    coef = np.linalg.solve(gram, (design.transpose(0, 2, 1) @ target)[..., None])[..., 0]  # (K, 3)
    sse = (((design @ coef[..., None])[..., 0] - target) ** 2).sum(1)
    k = int(np.nanargmin(sse))
    grid = [coef[k, 0], b2[k], b3[k], coef[k, 1], coef[k, 2]]
    direction = 1.0 if np.corrcoef(z, target)[0, 1] >= 0 else -1.0
    classic = [float(np.ptp(target)) or 1.0, direction, float(np.median(z)), 0.0, float(np.mean(target))]
    return [[float(v) for v in grid], classic]


def fit_logistic(
    pred: ArrayLike, target: ArrayLike, *, maxfev: int = 200, start: Sequence[float] | None = None
) -> LogisticCurve:
    """Fit the 5-parameter logistic mapping ``pred`` to ``target`` by least squares (scipy ``least_squares``).

    The fit runs on ``pred`` standardised to zero mean and unit variance (the same family of curves,
    better conditioned), by trust-region least squares with the analytic Jacobian, the slope bounded by
    ``MAX_SLOPE`` and the centre inside the data, from two starts: the best point of a grid over
    slope and centre (the other three parameters solved exactly there), and the classic start
    (amplitude the target's range, slope +/-1 by the sign of the correlation, centre the median,
    linear term 0, offset the target's mean). The result with the smaller squared error wins.

    Args:
        pred: ``(N,)`` metric values.
        target: ``(N,)`` subjective scores.
        maxfev: evaluation budget per start.
        start: a warm start ``(b1, .., b5)`` for the standardised input (e.g. ``f.params`` of a fit on
            similar data); when it converges the other starts are skipped.

    Returns:
        ``f(x) -> Q(x)``, the fitted curve on the original scale of ``pred``; ``f.params`` holds
        ``(b1, b2, b3, b4, b5)`` for the standardised input, ``f.center, f.scale`` the standardisation,
        ``f.converged`` whether the optimiser met its tolerances within ``maxfev`` evaluations (else
        the best parameters found, which never fit worse than the grid start).

    Raises:
        FitError: every start failed (non-finite parameters or an optimiser error, named), ``pred`` is
            constant, or there are fewer than ``MIN_FIT_POINTS`` (10) points for 5 parameters.

    Example:
        >>> x = np.linspace(0, 1, 50); y = 5 / (1 + np.exp(-8 * (x - 0.5)))
        >>> f = fit_logistic(x, y)
        >>> float(np.abs(f(x) - y).max()) < 1e-3
        True
    """
    pred, target = _vectors(pred, target)
    if pred.size < MIN_FIT_POINTS:
        raise FitError(f"the 5-parameter logistic needs at least {MIN_FIT_POINTS} points, got {pred.size}")
    center, scale = float(np.mean(pred)), float(np.std(pred))
    if scale == 0 or not np.isfinite(scale):
        raise FitError(f"cannot fit a logistic to a constant metric (all {pred.size} values are {pred[0]:.6g})")
    z = (pred - center) / scale
    # The slope is bounded (on the standardised input) so that scores in a few discrete steps, which
    # an infinitely steep logistic fits best, still give a converged fit; the centre stays in the data.
    bounds = (
        [-np.inf, -MAX_SLOPE, float(z.min()), -np.inf, -np.inf],
        [np.inf, MAX_SLOPE, float(z.max()), np.inf, np.inf],
    )
    best, best_sse, last_error, converged = None, np.inf, "no start tried", False
    starts = _logistic_starts(z, target) if start is None else [[float(v) for v in start]]
    while starts:
        result, error = _fit_from(z, target, starts.pop(0), bounds, maxfev)
        last_error = error or last_error
        if result is not None:
            sse = float(np.sum(result.fun**2))
            if np.isfinite(sse) and sse < best_sse:
                # status 0: the evaluation budget ran out; the parameters are then still the best found,
                # which on nearly linear data (the logistic's shape parameters barely matter) is the norm.
                best, best_sse, converged = result.x, sse, result.status > 0
        if start is not None and not starts and best is None:
            starts, start = _logistic_starts(z, target), None  # the warm start failed: the usual starts
    if best is None:
        raise FitError(f"the 5-parameter logistic fit failed from every start ({last_error})")
    return LogisticCurve(tuple(float(b) for b in best), center, scale, converged)


def _fit_from(
    z: np.ndarray, target: np.ndarray, p0: list[float], bounds: tuple[list[float], list[float]], maxfev: int
) -> tuple[Any, str | None]:
    """One least-squares fit of the logistic from ``p0`` (clipped into ``bounds``): ``(result, None)``, or
    ``(None, why)`` when the optimiser failed or gave non-finite parameters."""
    from scipy.optimize import least_squares

    p0[2] = float(np.clip(p0[2], bounds[0][2], bounds[1][2]))
    p0[1] = float(np.clip(p0[1], -MAX_SLOPE, MAX_SLOPE))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = least_squares(
                lambda b: logistic5(z, *b) - target,
                p0,
                jac=lambda b: _logistic5_jac(z, *b),
                bounds=bounds,
                method="trf",
                max_nfev=maxfev,
            )
    except (RuntimeError, ValueError) as exc:
        return None, str(exc)
    if not np.isfinite(result.x).all():
        return None, "non-finite parameters"
    return result, None


class LogisticCurve:
    """A fitted 5-parameter logistic on the original scale of the metric: ``curve(x) -> Q(x)``.

    Attributes:
        params: ``(b1, b2, b3, b4, b5)`` for the standardised input ``(x - center) / scale``.
        center, scale: the standardisation of the metric values it was fitted on.
        converged: whether the optimiser met its tolerances within its evaluation budget.

    Example:
        >>> curve = LogisticCurve((2.0, 1.0, 0.0, 0.0, 1.0), center=0.0, scale=1.0, converged=True)
        >>> float(curve(0.0))
        1.0
    """

    def __init__(self, params: tuple[float, ...], center: float, scale: float, converged: bool) -> None:
        self.params, self.center, self.scale, self.converged = params, center, scale, converged

    def __call__(self, x: ArrayLike) -> np.ndarray:
        return logistic5((np.asarray(x, dtype=float) - self.center) / self.scale, *self.params)

    def __repr__(self) -> str:
        return f"LogisticCurve(params={self.params}, center={self.center:.6g}, scale={self.scale:.6g})"


def correlations(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    higher_is_better: bool = True,
    lower_is_better_metric: bool = True,
    logistic: bool = True,
) -> dict[str, float]:
    """Every agreement statistic of a metric with subjective scores, oriented so agreement is positive.

    Args:
        pred: ``(N,)`` metric values.
        target: ``(N,)`` subjective scores.
        higher_is_better: the scores are MOS-like (True) or DMOS-like (False).
        lower_is_better_metric: the metric is a distance (True) or a similarity (False).
        logistic: also fit the 5-parameter logistic and report ``plcc_logistic``, ``rmse_logistic``
            (NaN where the fit fails, with ``fit_failed = 1``).

    Returns:
        ``{"n", "srocc", "krocc", "plcc", "rmse", "plcc_logistic", "rmse_logistic", "fit_failed"}``:
        correlations in [-1, 1], positive when the metric agrees with people; ``rmse`` is of the best
        linear map (``sqrt(1 - plcc^2) * std(target)``), ``rmse_logistic`` of the logistic, both in
        score units.

    Example:
        >>> out = correlations([0.1, 0.2, 0.4, 0.3], [1.0, 2.0, 4.0, 3.0], higher_is_better=False)
        >>> round(out["srocc"], 6), round(out["plcc"], 6)
        (1.0, 1.0)
    """
    pred, target = _vectors(pred, target)
    sign = -1.0 if higher_is_better == lower_is_better_metric else 1.0
    out = {"n": float(pred.size)}
    out["srocc"] = sign * srocc(pred, target)
    out["krocc"] = sign * krocc(pred, target)
    linear = plcc(pred, target)
    out["plcc"] = sign * linear
    out["rmse"] = float(np.sqrt(max(0.0, 1.0 - linear**2)) * np.std(target))
    if logistic:
        try:
            curve = fit_logistic(pred, target)
            fitted = curve(pred)
            out["plcc_logistic"] = plcc(fitted, target)
            out["rmse_logistic"] = rmse(fitted, target)
            out["fit_failed"] = 0.0
        except FitError:
            out["plcc_logistic"] = out["rmse_logistic"] = float("nan")
            out["fit_failed"] = 1.0
    return out


def two_afc_agreement(d0: ArrayLike, d1: ArrayLike, judge: ArrayLike) -> float:
    """BAPPS 2AFC score: how often the metric agrees with people, weighted by their agreement.

    For each triplet the metric prefers ``p0`` when ``d0 < d1``; ``judge`` is the fraction of people
    who preferred ``p1``. The score is ``mean((d0 < d1) * (1 - judge) + (d1 < d0) * judge + (d0 == d1) / 2)``
    (as the ``lpips`` package computes it); human agreement itself is ``mean(j^2 + (1-j)^2)``.

    Args:
        d0, d1: ``(N,)`` distances of p0 and p1 to the reference.
        judge: ``(N,)`` fractions in [0, 1].

    Returns:
        The score in [0, 1].

    Example:
        >>> two_afc_agreement([0.1, 0.5], [0.2, 0.4], [0.0, 1.0])
        1.0
    """
    d0, d1 = np.asarray(d0, dtype=float).reshape(-1), np.asarray(d1, dtype=float).reshape(-1)
    judge = np.asarray(judge, dtype=float).reshape(-1)
    if not (d0.shape == d1.shape == judge.shape) or d0.size == 0:
        raise InputError(f"expected d0, d1 and judge of one non-zero length, got {d0.size}, {d1.size}, {judge.size}")
    if ((judge < 0) | (judge > 1)).any():
        raise InputError(f"judge must hold fractions in [0, 1], got values in [{judge.min()}, {judge.max()}]")
    agree = (d0 < d1) * (1.0 - judge) + (d1 < d0) * judge + (d0 == d1) * 0.5
    return float(agree.mean())


def voc_average_precision(recall: ArrayLike, precision: ArrayLike) -> float:
    """Area under a precision-recall curve as PASCAL VOC computes it after 2007 (and ``lpips.voc_ap``).

    The curve is closed with ``(0, 0)`` and ``(1, 0)``, precision is replaced by its running maximum
    from the right (the envelope), and the area sums ``(r_{i+1} - r_i) * p_{i+1}`` where recall changes.

    Args:
        recall, precision: ``(K,)`` the curve's points, recall non-decreasing, both in [0, 1].

    Returns:
        The average precision in [0, 1].

    Example:
        >>> voc_average_precision([0.5, 1.0], [1.0, 0.5])
        0.75
    """
    rec = np.asarray(recall, dtype=float).reshape(-1)
    prec = np.asarray(precision, dtype=float).reshape(-1)
    if rec.shape != prec.shape:
        raise InputError(f"expected recall and precision of one length, got {rec.size} and {prec.size}")
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    changed = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[changed + 1] - mrec[changed]) * mpre[changed + 1]))


def jnd_map(d: ArrayLike, same: ArrayLike) -> float:
    """BAPPS JND score: the mean average precision of a distance at telling pairs people call the same.

    As the ``lpips`` package computes it (``score_jnd_dataset``): pairs sorted by distance ascending
    (``numpy.argsort``), ``TP = cumsum(same)``, ``FP = cumsum(1 - same)``, ``FN = sum(same) - TP``,
    precision ``TP / (TP + FP)`` and recall ``TP / (TP + FN)``, then :func:`voc_average_precision`.

    Args:
        d: ``(N,)`` the metric's distances between the two images of each pair (finite).
        same: ``(N,)`` the fraction of people who judged each pair the same, in [0, 1], not all 0.

    Returns:
        The mAP in [0, 1]: 1 when every pair judged the same is closer than every other.

    Raises:
        InputError: lengths differ or are 0, ``d`` holds NaN/Inf, ``same`` leaves [0, 1] or is all 0
            (then recall, and the score, are undefined).

    Example:
        >>> jnd_map([0.1, 0.2, 0.9], [1.0, 1.0, 0.0])
        1.0
    """
    d = np.asarray(d, dtype=float).reshape(-1)
    same = np.asarray(same, dtype=float).reshape(-1)
    if d.shape != same.shape or d.size == 0:
        raise InputError(f"expected d and same of one non-zero length, got {d.size} and {same.size}")
    if not np.isfinite(d).all():
        raise InputError(f"d holds {int((~np.isfinite(d)).sum())} NaN or infinite distance(s)")
    if not (np.isfinite(same).all() and ((same >= 0) & (same <= 1)).all()):
        raise InputError(f"same must hold fractions in [0, 1], got values in [{same.min()}, {same.max()}]")
    if same.sum() == 0:
        raise InputError("same is 0 for every pair: nobody judged any pair the same, so the JND mAP is undefined")
    order = np.argsort(d)
    sorted_same = same[order]
    tp = np.cumsum(sorted_same)
    fp = np.cumsum(1 - sorted_same)
    fn = np.sum(sorted_same) - tp
    return voc_average_precision(tp / (tp + fn), tp / (tp + fp))


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    groups: Sequence,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of a statistic, resampling whole groups (reference images).

    Pairs that share a reference image are not independent, so the bootstrap draws reference images
    with replacement and keeps all of their pairs.

    Args:
        statistic: ``f(indices) -> float``, evaluated on the row indices of a resample (rows may repeat).
        groups: ``(N,)`` group label of each row (the reference id).
        n_boot: number of resamples.
        level: confidence level in (0, 1).
        seed: seed of numpy's generator.

    Returns:
        ``(estimate on all rows, low, high)``. Resamples where the statistic fails (fewer than 3
        distinct rows) are skipped.

    Example:
        >>> pred, mos = np.random.rand(60), np.random.rand(60)
        >>> refs = np.repeat(np.arange(6), 10)
        >>> est, lo, hi = bootstrap_ci(lambda ix: srocc(pred[ix], mos[ix]), refs, n_boot=200)
        >>> lo <= est <= hi
        True
    """
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}")
    labels = np.asarray(groups)
    uniques, inverse = np.unique(labels, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniques))]
    if len(members) < 2:
        raise InputError(f"a bootstrap by group needs at least 2 groups, got {len(members)}")
    estimate = float(statistic(np.arange(labels.size)))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        drawn = rng.integers(0, len(members), len(members))
        index = np.concatenate([members[g] for g in drawn])
        try:
            value = float(statistic(index))
        except (InputError, FitError):
            continue
        if np.isfinite(value):
            values.append(value)
    if not values:
        raise InputError("every bootstrap resample failed; too few groups or rows")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return estimate, float(low), float(high)
