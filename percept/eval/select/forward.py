"""Greedy forward selection of feature maps and its cross-validation by reference image."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from percept.errors import InputError, SpecError
from percept.eval.datasets import IQADatabase
from percept.eval.select.files import Selection
from percept.eval.select.maps import MapScores
from percept.eval.sweep.options import merge_options

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


CRITERIA = ("plcc", "srocc")


@dataclass(frozen=True)
class SelectOptions:
    """How :func:`forward_select` selects maps, and each fold of :func:`cross_validate` the same way.

    Attributes:
        criterion: ``"plcc"`` (Pearson after the 5-parameter logistic) or ``"srocc"``; both oriented so that
            agreement is positive.
        tol: stop at the first step whose best candidate raises the criterion by ``tol`` or less; any number
            but NaN (``-inf``: never stop before ``max_maps``).
        max_maps: cap on the number of maps, ``>= 1`` (``None``: no cap).
        min_maps: keep adding until this many maps even if the criterion does not rise (benchmarks), ``>= 0``.
        screen: candidates considered per step, ``>= 1``: the best ``screen`` by linear Pearson (exact for all
            candidates from running sums); ``None`` considers all. Among them SROCC is exact (ranks of every
            candidate's pooled score); PLCC after the logistic is approximated per candidate (best amplitude,
            linear term and offset solved exactly on a grid of logistic shapes) and fitted exactly for the one
            chosen, whose exact value drives the stopping rule and the path.

    Raises:
        SpecError: an unknown criterion.
        InputError: another field out of range, naming it.

    Example:
        >>> SelectOptions(criterion="srocc", max_maps=20).screen
        64
        >>> SelectOptions(max_maps=0)
        Traceback (most recent call last):
        ...
        percept.errors.InputError: max_maps must be None or an integer >= 1, got 0
    """

    criterion: str = "plcc"
    tol: float = 1e-4
    max_maps: int | None = None
    min_maps: int = 1
    screen: int | None = 64

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise SpecError(f"criterion must be 'plcc' (after the logistic fit) or 'srocc', got {self.criterion!r}")
        if isinstance(self.tol, bool) or not isinstance(self.tol, int | float) or math.isnan(self.tol):
            raise InputError(f"tol must be a number (not NaN), got {self.tol!r}")
        for name, low, optional in (("max_maps", 1, True), ("screen", 1, True), ("min_maps", 0, False)):
            value = getattr(self, name)
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                kind = f"None or an integer >= {low}" if optional else f"an integer >= {low}"
                raise InputError(f"{name} must be {kind}, got {value!r}")


def _oriented_target(db_or_target, higher_is_better: bool | None) -> tuple[np.ndarray, bool]:
    if isinstance(db_or_target, IQADatabase):
        return db_or_target.table["score"].to_numpy(dtype=np.float64), db_or_target.higher_is_better
    if higher_is_better is None:
        raise InputError("pass higher_is_better with a plain score array (True: MOS, False: DMOS)")
    return np.asarray(db_or_target, dtype=np.float64).reshape(-1), higher_is_better


def _criterion_value(x: np.ndarray, y: np.ndarray, criterion: str, sign: float, start=None) -> tuple[float, Any]:
    """The criterion of pooled scores ``x`` against ``y`` (orientation ``sign``), and the logistic's parameters."""
    from percept.eval.stats import FitError, fit_logistic, plcc, srocc

    if criterion == "srocc":
        return sign * srocc(x, y), None
    linear = plcc(x, y)
    try:
        curve = fit_logistic(x, y, start=start)
    except FitError:
        return sign * linear, None
    value = plcc(curve(x), y)
    return (value if sign * linear >= 0 else -value), curve.params


def _srocc_columns(x: torch.Tensor, y: np.ndarray) -> torch.Tensor:
    """Spearman correlation of each column of ``x`` (P, K) with ``y`` (ties in ``x`` broken by order)."""
    from scipy.stats import rankdata

    ry = torch.from_numpy(rankdata(y)).float()
    ry = ry - ry.mean()
    ranks = torch.empty_like(x)
    ranks.scatter_(0, torch.argsort(x, dim=0), torch.arange(x.shape[0], dtype=x.dtype)[:, None].expand_as(x))
    ranks = ranks - ranks.mean(0, keepdim=True)
    return (ranks.T @ ry) / (ranks.norm(dim=0) * ry.norm()).clamp_min(1e-30)


_SLOPES = (1.0, 3.0, 9.0, -1.0, -3.0, -9.0)
_CENTRES = (-0.75, 0.0, 0.75)


def _logistic_screen(x: torch.Tensor, y: np.ndarray, sign: float, start=None) -> torch.Tensor:
    """Oriented PLCC after a logistic fit, approximated for every column of ``x`` (P, K) at once.

    For a fixed slope and centre the 5-parameter logistic is linear in its other three parameters, so
    for each (slope, centre) of a grid (plus the previous step's fitted shape) the best amplitude, linear
    term and offset are solved exactly per column, and the best shape per column kept. The PLCC of a
    least-squares fit is ``sqrt(1 - SSE / SST)``.
    """
    p = x.shape[0]
    zt = x.T.contiguous()  # (K, P): reductions run along contiguous memory
    zt = (zt - zt.mean(1, keepdim=True)) / zt.std(1, unbiased=False, keepdim=True).clamp_min(1e-12)
    yt = torch.from_numpy(y - y.mean()).float()
    sst = float(yt @ yt)
    zy = zt @ yt  # (K,)
    shapes = [(b2, b3) for b2 in _SLOPES for b3 in _CENTRES]
    if start is not None:
        shapes.append((float(start[1]), float(start[2])))
    b2 = torch.tensor([b for b, _ in shapes])[:, None, None]
    b3 = torch.tensor([c for _, c in shapes])[:, None, None]
    f = 0.5 - torch.sigmoid(-b2 * (zt[None] - b3))  # (G, K, P): 0.5 - 1/(1 + exp(b2 (z - b3)))
    # Normal equations of y ~ c1 f + c2 z + c3 with z standardised (z . 1 = 0, z . z = P).
    f1, fz, ff, fy = f.sum(2), (f * zt[None]).sum(2), (f * f).sum(2), f @ yt  # each (G, K)
    zeros, full = torch.zeros_like(f1), torch.full_like(f1, float(p))
    gram = torch.stack(
        [torch.stack([ff, fz, f1], -1), torch.stack([fz, full, zeros], -1), torch.stack([f1, zeros, full], -1)], -2
    ).double()  # (G, K, 3, 3)
    rhs = torch.stack([fy, zy.expand_as(fy), zeros], -1).double()  # (G, K, 3)
    coef = torch.linalg.solve(gram + 1e-9 * torch.eye(3, dtype=torch.float64), rhs[..., None])[..., 0]
    explained = (coef * rhs).sum(-1).float()  # (G, K): SST - SSE
    best = (explained / sst).clamp(0, 1).sqrt().amax(0)
    return best * torch.sign(sign * zy)


def forward_select(
    scores: MapScores,
    target: IQADatabase | Sequence[float],
    options: SelectOptions | None = None,
    *,
    higher_is_better: bool | None = None,
    rows: np.ndarray | None = None,
    **overrides: Any,
) -> Selection:
    """Greedy forward selection of maps whose mean score agrees best with the subjective scores.

    Args:
        scores: the ``(pairs, maps)`` matrix (:func:`map_scores`).
        target: the database (its scores and kind), or a score array with ``higher_is_better``.
        options: a :class:`SelectOptions` (criterion, tol, max_maps, min_maps, screen); default ``SelectOptions()``.
        higher_is_better: the kind of a plain score array.
        rows: restrict to these pairs (cross-validation).
        **overrides: fields of :class:`SelectOptions` (``criterion="srocc"``, ``max_maps=20``), applied over
            ``options``.

    Returns:
        A :class:`Selection` with the path and the all-maps baseline.

    Example:
        >>> sel = forward_select(scores, db, criterion="srocc", max_maps=20)  # doctest: +SKIP
        >>> len(sel.maps), sel.path["criterion"].iloc[-1] > sel.baseline["criterion"]  # doctest: +SKIP
        (9, True)
    """
    import pandas as pd

    options = merge_options(SelectOptions, options, overrides)
    criterion, tol, screen = options.criterion, options.tol, options.screen
    matrix, y, hib = _checked_matrix(scores, target, higher_is_better, rows)
    n_maps = matrix.shape[1]
    cap = n_maps if options.max_maps is None else min(options.max_maps, n_maps)
    # Orientation: a similarity should rise with quality; quality is the score for MOS, minus it for DMOS.
    sign = 1.0 if scores.similarity == hib else -1.0
    run = _RunningSum(matrix, y)
    chosen: list[int] = []
    path_rows = []
    current, start = -math.inf, None
    stopped = f"reached max_maps ({cap})" if cap < n_maps else f"every map ({n_maps}) selected"
    while len(chosen) < cap:
        best_j = _best_candidate(run, y, sign, criterion, screen, start)
        best_value, best_params = _criterion_value((run.u + run.columns[:, best_j]).numpy(), y, criterion, sign, start)
        if best_j < 0 or (best_value <= current + tol and len(chosen) >= options.min_maps):
            gain = f"the best next map changed {criterion} by {best_value - current:+.2g}, not more than tol={tol:g}"
            stopped = "no candidate map left" if best_j < 0 else gain
            break
        chosen.append(best_j)
        run.add(best_j)
        current, start = best_value, best_params
        path_rows.append(_path_row(scores, run.u.numpy(), y, len(chosen), best_j, best_value, criterion, sign))
    meta = dict(backbone=scores.backbone, weights=scores.weights, measure=scores.measure, resize=scores.resize,
                database=scores.database, network_resize=scores.network_resize,
                weights_checksum=scores.weights_checksum, signature=scores.signature)  # fmt: skip
    return Selection(
        chosen, [scores.taps[j] for j in chosen], [scores.channels[j] for j in chosen], pd.DataFrame(path_rows),
        criterion, _baseline(matrix, y, hib, scores, criterion, sign), meta, stopped=stopped,
    )  # fmt: skip


def _checked_matrix(
    scores: MapScores, target: IQADatabase | Sequence[float], higher_is_better: bool | None, rows: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The matrix and oriented target a selection runs on (``rows`` only), checked: ``(matrix, y, hib)``."""
    y, hib = _oriented_target(target, higher_is_better)
    matrix = scores.matrix
    if matrix.ndim != 2 or matrix.shape[0] != y.size:
        raise InputError(f"expected a (pairs, maps) matrix with {y.size} rows, got shape {matrix.shape}")
    if rows is not None:
        matrix, y = matrix[rows], y[rows]
    if matrix.shape[0] < 4:
        raise InputError(f"selection needs at least 4 pairs, got {matrix.shape[0]}")
    if not np.isfinite(matrix).all():
        raise InputError("the map-score matrix holds NaN or Inf")
    return matrix, y, hib


class _RunningSum:
    """The running sum ``u`` of the chosen (centred) columns, and the sums from which the Pearson correlation
    of ``u + column j`` with the target follows for every ``j`` at once (one pass over the matrix per step)."""

    def __init__(self, matrix: np.ndarray, y: np.ndarray) -> None:
        pairs, n_maps = matrix.shape
        S = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
        self.columns = S - S.mean(0, keepdim=True)  # (P, M), centred
        self.yc = torch.from_numpy(y - y.mean()).float()
        self.col_cov = self.columns.T @ self.yc  # (M,)
        self.col_sq = (self.columns * self.columns).sum(0)  # (M,)
        self.u = torch.zeros(pairs)  # running sum of selected columns, centred
        self.u_cross = torch.zeros(n_maps)  # columns^T u
        self.u_sq = 0.0
        self.u_cov = 0.0
        self.available = torch.ones(n_maps, dtype=torch.bool)

    def pearson(self, sign: float) -> torch.Tensor:
        """Pearson of ``u + column j`` with the target for every ``j``, ``(M,)``; ``-inf`` where chosen."""
        var = self.u_sq + 2 * self.u_cross + self.col_sq
        pearson = sign * (self.u_cov + self.col_cov) / torch.sqrt(var.clamp_min(1e-30))
        pearson[~self.available] = -math.inf
        return pearson

    def add(self, j: int) -> None:
        """Add column ``j`` to the running sum."""
        column = self.columns[:, j]
        self.available[j] = False
        self.u = self.u + column
        self.u_cross = self.u_cross + self.columns.T @ column
        self.u_sq = float(self.u @ self.u)
        self.u_cov = float(self.u @ self.yc)


def _best_candidate(run: _RunningSum, y: np.ndarray, sign: float, criterion: str, screen: int | None, start) -> int:
    """The column whose addition scores best: the ``screen`` best by linear Pearson, ranked by the criterion."""
    pearson = run.pearson(sign)
    candidates = torch.nonzero(run.available).flatten()
    if screen is not None and screen < candidates.numel():
        candidates = torch.topk(pearson, screen).indices
    pooled = run.u[:, None] + run.columns[:, candidates]  # (P, K) running sum plus each candidate
    screened = _srocc_columns(pooled, y) * sign if criterion == "srocc" else _logistic_screen(pooled, y, sign, start)
    return int(candidates[int(torch.argmax(screened))])


def _path_row(
    scores: MapScores, pooled: np.ndarray, y: np.ndarray, step: int, j: int, value: float, criterion: str, sign: float
) -> dict[str, Any]:
    """One row of the selection path: the map chosen at ``step`` and the pooled score's SROCC and PLCC."""
    from percept.eval.stats import srocc

    # The mean of the chosen maps is an affine map of the running sum: same correlations.
    rank = sign * srocc(pooled, y) if criterion == "plcc" else value
    logistic = value if criterion == "plcc" else _criterion_value(pooled, y, "plcc", sign)[0]
    return {"step": step, "map": j, "tap": scores.taps[j], "channel": scores.channels[j],
            "criterion": value, "srocc": rank, "plcc_logistic": logistic}  # fmt: skip


def _baseline(
    matrix: np.ndarray, y: np.ndarray, hib: bool, scores: MapScores, criterion: str, sign: float
) -> dict[str, Any]:
    """The agreement of the mean of all maps: what a selection is compared with."""
    from percept.eval.stats import correlations

    everything = matrix.mean(1)
    all_stats = correlations(everything, y, higher_is_better=hib, lower_is_better_metric=not scores.similarity)
    return {
        "criterion": _criterion_value(everything, y, criterion, sign)[0],
        "srocc": all_stats["srocc"],
        "plcc_logistic": all_stats["plcc_logistic"],
        "maps": matrix.shape[1],
    }


def cross_validate(
    scores: MapScores,
    db: IQADatabase,
    options: SelectOptions | None = None,
    *,
    folds: int = 5,
    seed: int = 0,
    **overrides: Any,
) -> pd.DataFrame:
    """Select on the pairs of some reference images, measure on the pairs of the others.

    Args:
        scores: the matrix for ``db``.
        db: the database (its ``ref_id`` column defines the folds).
        folds: number of folds (at most the number of references).
        seed: shuffles the references before splitting.
        options: a :class:`SelectOptions`, each fold's :func:`forward_select` (default ``SelectOptions()``).
        **overrides: fields of :class:`SelectOptions`, applied over ``options``.

    Returns:
        One row per fold: ``fold, train_refs, test_refs, maps, train_criterion, test_srocc,
        test_plcc_logistic, all_maps_test_srocc, all_maps_test_plcc_logistic`` (test statistics
        oriented so that agreement is positive; the logistic is fitted on the test pairs, as in any
        evaluation of a fixed metric).

    Example:
        >>> cross_validate(scores, db, folds=5, criterion="srocc")[["fold", "test_srocc"]]  # doctest: +SKIP
    """
    import pandas as pd

    from percept.eval.stats import correlations

    options = merge_options(SelectOptions, options, overrides)
    refs = np.array(db.references)
    if not 2 <= folds <= len(refs):
        raise InputError(f"folds must be between 2 and the number of references ({len(refs)}), got {folds}")
    rng = np.random.default_rng(seed)
    shuffled = refs[rng.permutation(len(refs))]
    groups = np.array_split(shuffled, folds)
    ref_ids = db.table["ref_id"].to_numpy()
    y = db.table["score"].to_numpy(dtype=float)
    out = []
    for k, test_refs in enumerate(groups):
        test = np.isin(ref_ids, test_refs)
        train_rows, test_rows = np.flatnonzero(~test), np.flatnonzero(test)
        sel = forward_select(scores, db, options, rows=train_rows)
        lower = not scores.similarity
        chosen = correlations(scores.matrix[test_rows][:, sel.maps].mean(1), y[test_rows],
                              higher_is_better=db.higher_is_better, lower_is_better_metric=lower)  # fmt: skip
        everything = correlations(scores.matrix[test_rows].mean(1), y[test_rows],
                                  higher_is_better=db.higher_is_better, lower_is_better_metric=lower)  # fmt: skip
        out.append(
            {"fold": k, "train_refs": int((~np.isin(refs, test_refs)).sum()), "test_refs": len(test_refs),
             "maps": len(sel.maps), "train_criterion": float(sel.path["criterion"].iloc[-1]),
             "test_srocc": chosen["srocc"], "test_plcc_logistic": chosen["plcc_logistic"],
             "all_maps_test_srocc": everything["srocc"], "all_maps_test_plcc_logistic": everything["plcc_logistic"]}
        )  # fmt: skip
    return pd.DataFrame(out)
