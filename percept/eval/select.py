"""Forward (wrapper) selection of individual feature maps that agree with human quality judgements.

As in the study that selects AlexNet/VGG16 maps (Nguyen & Amirshahi): every feature map of the
chosen taps is compared between reference and distorted image on its own (SSIM between the two maps
by default), giving a ``(pairs x maps)`` matrix computed once (:func:`map_scores`). Then
:func:`forward_select` starts from the best single map and repeatedly adds the map whose addition
raises the criterion most, stopping at the first step that does not raise it by more than ``tol``.

Choices the study leaves open are options here:

- *pooling* of the per-map scores of a set: their mean (kept as running sums, so a step costs one
  pass over the matrix);
- *criterion*: ``"plcc"`` (Pearson after the 5-parameter logistic fit) or ``"srocc"``; the
  orientation is fixed by the score kind (a similarity must rise with MOS, fall with DMOS);
- *screening*: each step ranks every candidate by linear Pearson (exact, from running sums) and
  evaluates the criterion on the ``screen`` best of them (``screen=None``: on all of them): SROCC
  exactly, PLCC after the logistic by a closed-form fit on a grid of logistic shapes, then an exact fit
  of the map chosen;
- *validation*: :func:`cross_validate` selects on the pairs of some reference images and reports the
  correlation on the others (folds by reference).

A selection saves as JSON (:meth:`Selection.save`) and loads as a metric
(:func:`selection_pipeline`, or the built-in preset ``map-selection``):
``1 - mean SSIM`` over the selected maps, exactly the pooled score that was selected, differentiable.

Why not a :class:`~percept.readouts.base.ChannelWeightedReadout` with 0/1 weights: that weights
squared differences summed over channels, whereas the selected score is the *mean of per-map SSIM*;
the two rank image pairs differently. The saved readout keeps the selected channels
(:class:`MapSubsetReadout`) and the distance is the per-map SSIM (the ``ssim`` distance), with
layer weights ``n_tap / n_total`` so that the sum over taps is the mean over all selected maps.

Example:
    >>> scores = map_scores(db, "alexnet", weights="imagenet")  # doctest: +SKIP
    >>> sel = forward_select(scores, db, criterion="plcc")  # doctest: +SKIP
    >>> sel.path[["step", "tap", "channel", "criterion"]]  # doctest: +SKIP
    >>> sel.save("alexnet-tid2013.json")  # doctest: +SKIP
    >>> metric = selection_pipeline("alexnet-tid2013.json")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from percept.distances.ssim import SSIMDistance
from percept.errors import InputError, SpecError
from percept.eval.datasets import IQADatabase
from percept.readouts.base import Readout

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from percept.backbones.base import Backbone

FORMAT = "percept-map-selection/1"
PER_MAP = ("ssim", "mse", "unit-l2")

# -- the (pairs x maps) matrix ---------------------------------------------------------------------------


@dataclass
class MapScores:
    """Per-map scores of every pair: ``matrix[p, m]`` compares map ``m`` of pair ``p``.

    Attributes:
        matrix: ``(pairs, maps)`` float32.
        taps: ``(maps,)`` tap name of each map; ``channels``: ``(maps,)`` its channel in the tap.
        measure: ``"ssim"`` (a similarity: 1 for identical maps), ``"mse"`` or ``"unit-l2"`` (distances).
        backbone, weights, resize: how the features were made (saved with a selection).
        database: the database's name.
        network_resize: the backbone was built with ``resize=True`` (a network that runs at one input
            size only; see :func:`percept.eval.sweep.build_backbone`).
    """

    matrix: np.ndarray
    taps: list[str]
    channels: list[int]
    measure: str = "ssim"
    backbone: str = ""
    weights: str | None = None
    resize: Any = None
    database: str = ""
    network_resize: bool = False
    config: dict | None = None  # what the CLI computed it from (its cache key)

    @property
    def similarity(self) -> bool:
        """True when higher per-map scores mean more alike (SSIM)."""
        return self.measure == "ssim"

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` file (matrix and metadata) that :meth:`load` reads back."""
        path = Path(path)
        meta = dict(taps=self.taps, channels=self.channels, measure=self.measure, backbone=self.backbone,
                    weights=self.weights, resize=self.resize, database=self.database,
                    network_resize=self.network_resize, config=self.config)  # fmt: skip
        from percept.io import atomic_write

        with atomic_write(path, "wb") as f:
            np.savez(f, matrix=self.matrix, meta=json.dumps(meta))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> MapScores:
        """Read a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return cls(np.asarray(data["matrix"], dtype=np.float32), **meta)


def default_taps(backbone: Backbone) -> list[str]:
    """Every convolutional layer's ReLU output (``relu*`` taps, e.g. AlexNet's 5, VGG16's 13), else the canonical taps.

    Example:
        >>> default_taps(create_backbone("vgg16", weights=None))[:3]  # doctest: +SKIP
        ['relu1_1', 'relu1_2', 'relu2_1']
    """
    relus = [t.name for t in backbone.feature_info if t.name.startswith("relu") and not t.canonical]
    return relus or backbone.canonical_taps


def map_scores(
    db: IQADatabase,
    backbone: str | Backbone,
    *,
    taps: Sequence[str] | None = None,
    measure: str = "ssim",
    weights="imagenet",
    resize=None,
    batch_size: int = 8,
    workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    network_resize: bool = False,
) -> MapScores:
    """Compare every feature map of ``taps`` between each pair's reference and distorted image.

    One forward pass per reference image and one per batch of distorted images (as the sweep).

    Args:
        db: the database.
        backbone: a name or a built backbone.
        taps: tap names; default :func:`default_taps`.
        measure: ``"ssim"`` (SSIM between the two maps, as the study), ``"mse"``, or ``"unit-l2"``
            (squared difference of unit-normalised channels, the per-channel term of LPIPS).
        weights, resize, batch_size, workers, device, progress, network_resize: as
            :func:`percept.eval.sweep.sweep_backbone`.

    Returns:
        :class:`MapScores` with a ``(len(db), total channels)`` matrix.

    Example:
        >>> ms = map_scores(db, "alexnet", taps=["relu1", "relu2"], weights=None)  # doctest: +SKIP
        >>> ms.matrix.shape  # doctest: +SKIP
        (3000, 256)
    """
    from percept.eval.sweep import (
        TapScorer,
        _check_sweep_memory,
        _progress,
        build_backbone,
        image_side,
        iterate_chunks,
        make_chunks,
        mse_per_map,
        ssim_per_map,
        unit_sq_per_map,
    )

    if measure not in PER_MAP:
        raise SpecError(f"per-map measure must be one of {list(PER_MAP)}, got {measure!r}")
    name = backbone if isinstance(backbone, str) else backbone.name
    net = build_backbone(backbone, weights=weights, network_resize=network_resize).to(device).eval()
    tap_names = list(taps) if taps else default_taps(net)
    from percept.eval.sweep import sweep_taps

    tap_list = sweep_taps(net, tap_names)
    fn = {"ssim": ssim_per_map, "mse": mse_per_map, "unit-l2": unit_sq_per_map}[measure]
    scorer = TapScorer(net, tap_list, {measure: fn})
    channels = [net.tap_info(t.module).channels if t.module else 3 for t in tap_list]
    matrix = np.zeros((len(db), sum(channels)), dtype=np.float32)
    offsets = np.cumsum([0, *channels])
    chunks = make_chunks(db, batch_size)
    current = None
    if resize is not None:  # refused before any image is decoded at a size that cannot fit
        _check_sweep_memory(net, tap_list, (1, 3, *image_side(resize)), batch_size, torch.device(device), name)
    for _, ref_id, ref, dists, rows in _progress(
        iterate_chunks(db, chunks, resize=resize, workers=workers), len(chunks), f"{name} maps", progress
    ):
        if ref_id != current:
            scorer.set_reference(ref.to(device))
            current = ref_id
        out = scorer.score(dists.to(device))
        for i, tap in enumerate(tap_list):
            matrix[rows.numpy(), offsets[i] : offsets[i + 1]] = out[(tap.name, measure)].float().numpy()
    return MapScores(
        matrix,
        [t.name for t, c in zip(tap_list, channels, strict=True) for _ in range(c)],
        [ch for c in channels for ch in range(c)],
        measure,
        name,
        None if weights is None else str(weights),
        resize,
        db.name,
        net.resize,
    )


# -- greedy selection --------------------------------------------------------------------------------------


@dataclass
class Selection:
    """The result of a forward selection.

    Attributes:
        maps: selected map indices (columns of the matrix), in the order added.
        taps, channels: the selected maps' taps and channels.
        path: DataFrame, one row per step: ``step, map, tap, channel, criterion, srocc, plcc_logistic``.
        criterion: ``"plcc"`` or ``"srocc"``.
        baseline: ``{"criterion", "srocc", "plcc_logistic"}`` of the mean over all maps.
        scores_meta: backbone, weights, measure, resize, database of the matrix.
        cv: cross-validation rows (from :func:`cross_validate`), or None.
    """

    maps: list[int]
    taps: list[str]
    channels: list[int]
    path: pd.DataFrame
    criterion: str
    baseline: dict[str, float]
    scores_meta: dict[str, Any] = field(default_factory=dict)
    cv: pd.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what :meth:`save` writes)."""
        by_tap: dict[str, list[int]] = {}
        for tap, channel in zip(self.taps, self.channels, strict=True):
            by_tap.setdefault(tap, []).append(int(channel))
        return {
            "format": FORMAT,
            **self.scores_meta,
            "criterion": self.criterion,
            "maps": by_tap,
            "order": [[t, int(c)] for t, c in zip(self.taps, self.channels, strict=True)],
            "baseline": self.baseline,
            "path": self.path.to_dict("records"),
            "cv": None if self.cv is None else self.cv.to_dict("records"),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the selection as JSON, loadable by :func:`selection_pipeline` and the ``map-selection`` preset."""
        path = Path(path)
        from percept.io import write_text

        write_text(path, json.dumps(self.to_dict(), indent=1, default=_json_default))
        return path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


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
    *,
    criterion: str = "plcc",
    higher_is_better: bool | None = None,
    tol: float = 1e-4,
    max_maps: int | None = None,
    min_maps: int = 1,
    screen: int | None = 64,
    rows: np.ndarray | None = None,
) -> Selection:
    """Greedy forward selection of maps whose mean score agrees best with the subjective scores.

    Args:
        scores: the ``(pairs, maps)`` matrix (:func:`map_scores`).
        target: the database (its scores and kind), or a score array with ``higher_is_better``.
        criterion: ``"plcc"`` (Pearson after the 5-parameter logistic) or ``"srocc"``; both oriented so
            that agreement is positive.
        higher_is_better: the kind of a plain score array.
        tol: stop at the first step whose best candidate raises the criterion by ``tol`` or less.
        max_maps: cap on the number of maps (``None``: no cap).
        min_maps: keep adding until this many maps even if the criterion does not rise (benchmarks).
        screen: candidates considered per step: the best ``screen`` by linear Pearson (exact for all
            candidates from running sums); ``None`` considers all. Among them SROCC is exact (ranks of
            every candidate's pooled score); PLCC after the logistic is approximated per candidate (best
            amplitude, linear term and offset solved exactly on a grid of logistic shapes) and fitted
            exactly for the one chosen, whose exact value drives the stopping rule and the path.
        rows: restrict to these pairs (cross-validation).

    Returns:
        A :class:`Selection` with the path and the all-maps baseline.

    Example:
        >>> sel = forward_select(scores, db, criterion="srocc", max_maps=20)  # doctest: +SKIP
        >>> len(sel.maps), sel.path["criterion"].iloc[-1] > sel.baseline["criterion"]  # doctest: +SKIP
        (9, True)
    """
    import pandas as pd

    from percept.eval.stats import correlations, srocc

    if criterion not in ("plcc", "srocc"):
        raise SpecError(f"criterion must be 'plcc' (after the logistic fit) or 'srocc', got {criterion!r}")
    y, hib = _oriented_target(target, higher_is_better)
    matrix = scores.matrix
    if matrix.ndim != 2 or matrix.shape[0] != y.size:
        raise InputError(f"expected a (pairs, maps) matrix with {y.size} rows, got shape {matrix.shape}")
    if rows is not None:
        matrix, y = matrix[rows], y[rows]
    pairs, n_maps = matrix.shape
    if pairs < 4:
        raise InputError(f"selection needs at least 4 pairs, got {pairs}")
    if not np.isfinite(matrix).all():
        raise InputError("the map-score matrix holds NaN or Inf")
    cap = n_maps if max_maps is None else max(1, min(max_maps, n_maps))
    # Orientation: a similarity should rise with quality; quality is the score for MOS, minus it for DMOS.
    sign = 1.0 if scores.similarity == hib else -1.0

    S = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
    Sc = S - S.mean(0, keepdim=True)
    yc = torch.from_numpy(y - y.mean()).float()
    col_cov = Sc.T @ yc  # (M,)
    col_sq = (Sc * Sc).sum(0)  # (M,)
    u = torch.zeros(pairs)  # running sum of selected columns, centred
    u_cross = torch.zeros(n_maps)  # Sc^T u
    u_sq = 0.0
    u_cov = 0.0
    chosen: list[int] = []
    available = torch.ones(n_maps, dtype=torch.bool)
    path_rows = []
    current = -math.inf
    start = None
    while len(chosen) < cap:
        # Pearson of (u + column j) with y for every j, from running sums.
        var = u_sq + 2 * u_cross + col_sq
        pearson = sign * (u_cov + col_cov) / torch.sqrt(var.clamp_min(1e-30))
        pearson[~available] = -math.inf
        candidates = torch.nonzero(available).flatten()
        if screen is not None and screen < candidates.numel():
            candidates = torch.topk(pearson, screen).indices
        pooled = u[:, None] + Sc[:, candidates]  # (P, K) running sum plus each candidate
        if criterion == "srocc":
            screened = _srocc_columns(pooled, y) * sign
        else:
            screened = _logistic_screen(pooled, y, sign, start)
        best_j = int(candidates[int(torch.argmax(screened))])
        best_value, best_params = _criterion_value((u + Sc[:, best_j]).numpy(), y, criterion, sign, start)
        if best_j < 0 or (best_value <= current + tol and len(chosen) >= min_maps):
            break
        chosen.append(best_j)
        available[best_j] = False
        column = Sc[:, best_j]
        u = u + column
        u_cross = u_cross + Sc.T @ column
        u_sq = float(u @ u)
        u_cov = float(u @ yc)
        current, start = best_value, best_params
        # The mean of the chosen maps is an affine map of the running sum u: same correlations.
        pooled = u.numpy()
        rank = sign * srocc(pooled, y) if criterion == "plcc" else best_value
        logistic = best_value if criterion == "plcc" else _criterion_value(pooled, y, "plcc", sign)[0]
        path_rows.append(
            {"step": len(chosen), "map": best_j, "tap": scores.taps[best_j], "channel": scores.channels[best_j],
             "criterion": best_value, "srocc": rank, "plcc_logistic": logistic}
        )  # fmt: skip
    everything = matrix.mean(1)
    all_stats = correlations(everything, y, higher_is_better=hib, lower_is_better_metric=not scores.similarity)
    baseline = {
        "criterion": _criterion_value(everything, y, criterion, sign)[0],
        "srocc": all_stats["srocc"],
        "plcc_logistic": all_stats["plcc_logistic"],
        "maps": n_maps,
    }
    meta = dict(backbone=scores.backbone, weights=scores.weights, measure=scores.measure, resize=scores.resize,
                database=scores.database, network_resize=scores.network_resize)  # fmt: skip
    return Selection(
        chosen, [scores.taps[j] for j in chosen], [scores.channels[j] for j in chosen], pd.DataFrame(path_rows),
        criterion, baseline, meta,
    )  # fmt: skip


def cross_validate(
    scores: MapScores,
    db: IQADatabase,
    *,
    folds: int = 5,
    seed: int = 0,
    **select_kwargs,
) -> pd.DataFrame:
    """Select on the pairs of some reference images, measure on the pairs of the others.

    Args:
        scores: the matrix for ``db``.
        db: the database (its ``ref_id`` column defines the folds).
        folds: number of folds (at most the number of references).
        seed: shuffles the references before splitting.
        **select_kwargs: passed to :func:`forward_select`.

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
        sel = forward_select(scores, db, rows=train_rows, **select_kwargs)
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


# -- the selection as a metric --------------------------------------------------------------------------


class MapSubsetReadout(Readout):
    """Keeps the selected channels of a tap: ``(N, C, H, W) -> (N, K, H, W)``.

    Args:
        channels: the tap's channel count.
        keep: indices of the channels kept.

    Example:
        >>> MapSubsetReadout(4, [0, 2])(torch.arange(4.0).view(1, 4, 1, 1)).flatten().tolist()
        [0.0, 2.0]
    """

    def __init__(self, channels: int, keep: Sequence[int]) -> None:
        super().__init__()
        keep = [int(c) for c in keep]
        if not keep or min(keep) < 0 or max(keep) >= channels:
            raise SpecError(f"selected channels must lie in [0, {channels}), got {keep}")
        self.register_buffer("keep", torch.tensor(keep, dtype=torch.long), persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.index_select(1, self.keep)

    def extra_repr(self) -> str:
        return f"keep={self.keep.tolist()}"


# The selection's distance is the registered ``ssim`` distance (the same per-map SSIM as the matrix).
MapSSIMDistance = SSIMDistance


def read_json_file(path: str | os.PathLike, what: str) -> Any:
    """The JSON in ``path``, or an :class:`InputError` naming the file and what is wrong with it (missing, a
    folder, unreadable, not UTF-8, not JSON, nested too deeply).

    Example:
        >>> read_json_file("/nonexistent.json", "map selection")
        Traceback (most recent call last):
        ...
        percept.errors.InputError: map selection file '/nonexistent.json' does not exist
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} file '{path}' does not exist")
    if path.is_dir():
        raise InputError(f"{what} file '{path}' is a folder; expected a JSON file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"'{path}' is not a {what}: it is not UTF-8 text (JSON expected)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"'{path}' is not a {what} (JSON error: {exc})") from None
    except RecursionError:
        raise InputError(f"'{path}' is not a {what}: its JSON is nested too deeply") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} file '{path}': {exc.strerror or exc}") from None


def check_recorded_source(data: dict, where: str, weights_key: str) -> None:
    """The fields every saved toolkit result must hold to rebuild its backbone: ``backbone`` (a name),
    ``weights_key`` (the weights it was computed with: a tag, a file, or null for random; required, so a
    missing field never silently means random weights) and, if present, ``network_resize`` (a boolean)."""
    if not isinstance(data.get("backbone"), str) or not data["backbone"]:
        raise InputError(f"{where}: field 'backbone' must be a backbone name, got {data.get('backbone')!r}")
    if weights_key not in data:
        raise InputError(
            f"{where}: field {weights_key!r} is missing (the weights it was computed with: a tag, a file or null "
            "for random weights)"
        )
    if data[weights_key] is not None and not isinstance(data[weights_key], str):
        raise InputError(f"{where}: field {weights_key!r} must be a string or null, got {data[weights_key]!r}")
    if not isinstance(data.get("network_resize", False), bool):
        raise InputError(f"{where}: field 'network_resize' must be true or false, got {data['network_resize']!r}")


def load_selection(path: str | os.PathLike) -> dict[str, Any]:
    """Read a selection written by :meth:`Selection.save`, checking every field a metric is built from.

    Raises:
        InputError: the file is missing or not a map selection, naming the file and the field at fault:
            ``maps`` must map tap names to lists of distinct channel indices (integers >= 0).

    Example:
        >>> load_selection("/nonexistent.json")
        Traceback (most recent call last):
        ...
        percept.errors.InputError: map selection file '/nonexistent.json' does not exist
    """
    data = read_json_file(path, "map selection")
    if not isinstance(data, dict) or data.get("format") != FORMAT or not data.get("maps"):
        raise InputError(f"'{path}' is not a map selection: expected JSON with format {FORMAT!r} and 'maps'")
    check_selection(data, f"map selection '{path}'")
    return data


def check_selection(data: dict, where: str = "map selection") -> None:
    """Check a selection's fields (see :func:`load_selection`); ``where`` names it in errors."""
    check_recorded_source(data, where, "weights")
    if not isinstance(data.get("measure", "ssim"), str):
        raise InputError(f"{where}: field 'measure' must be a string, got {data.get('measure')!r}")
    maps = data.get("maps")
    if not isinstance(maps, dict) or not maps:
        raise InputError(f"{where}: field 'maps' must map tap names to channel lists, got {type(maps).__name__}")
    for tap, channels in maps.items():
        if not isinstance(channels, list) or not channels:
            raise InputError(f"{where}: maps[{tap!r}] must be a non-empty list of channel indices, got {channels!r}")
        bad = [c for c in channels if isinstance(c, bool) or not isinstance(c, int) or c < 0]
        if bad:
            raise InputError(f"{where}: maps[{tap!r}] holds {bad[0]!r}; channel indices are integers >= 0")
        if len(set(channels)) != len(channels):
            raise InputError(f"{where}: maps[{tap!r}] names a channel twice")


def selection_pipeline(
    selection: str | os.PathLike | Selection | dict,
    *,
    weights="from-file",
    input_range: tuple[float, float] = (0.0, 1.0),
    check_inputs: bool = True,
):
    """The metric a selection defines: ``1 - mean SSIM`` over the selected maps, as a Pipeline.

    Args:
        selection: a saved file, a :class:`Selection`, or its ``to_dict()``.
        weights: backbone weights; ``"from-file"`` uses those the selection was computed with
            (``None`` there means random weights).
        input_range: the range of images passed.
        check_inputs: validate inputs on every call.

    Returns:
        A frozen Pipeline, differentiable in its inputs (usable as a loss).

    Example:
        >>> d = selection_pipeline("alexnet-tid2013.json")(x, y)  # (N,)  # doctest: +SKIP
    """
    from percept.backbones.factory import create_backbone
    from percept.pipeline import Pipeline

    if isinstance(selection, Selection):
        data = selection.to_dict()
    elif isinstance(selection, dict):
        data = selection
        check_selection(data)
    else:
        data = load_selection(selection)
    if data.get("measure", "ssim") != "ssim":
        raise SpecError(f"only SSIM selections load as a metric, this one used {data.get('measure')!r}")
    weights = data.get("weights") if weights == "from-file" else weights
    options = {"resize": True} if data.get("network_resize") else {}
    backbone = create_backbone(data["backbone"], weights=weights, input_range=input_range, **options)
    taps = list(data["maps"])
    if "input" in taps:
        raise SpecError("selections of input channels do not load as a metric")
    readouts = [MapSubsetReadout(backbone.tap_info(t).channels, data["maps"][t]) for t in taps]
    total = sum(len(v) for v in data["maps"].values())
    layer_weights = [len(data["maps"][t]) / total for t in taps]
    spec = f"map-selection({data['backbone']}, {total} maps)"
    return Pipeline(backbone, taps, readouts, MapSSIMDistance(), layer_weights, spec=spec, check_inputs=check_inputs)
