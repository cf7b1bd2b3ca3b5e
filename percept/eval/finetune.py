"""Channel-relevance fine-tuning: non-negative per-channel weights learned from human scores.

The readout is LPIPS' without its published heads: unit-normalised channels, squared difference,
channel weights ``w_c >= 0``, mean over space, summed over taps::

    d(x, y) = sum_taps mean_hw sum_c w_c (x̂_c - ŷ_c)^2  =  sum_taps sum_c w_c e_c,   e_c = mean_hw (x̂_c - ŷ_c)^2

It is linear in the weights, so the per-channel errors ``e`` of every pair are computed once (a
``(pairs x channels)`` matrix, :func:`channel_errors`, one forward per image as in the sweep) and the
weights are then fitted on the matrix alone, in seconds: ``w = softplus(theta)``, loss ``1 - PLCC``
between ``d`` and the scores oriented as badness (or a pairwise ranking loss), Adam, splits disjoint by
reference image, early stopping on the validation split, the test split (other references) reporting
the before (all weights 1) and after correlations. The weights save as
:class:`~percept.readouts.base.ChannelWeightedReadout` heads (:func:`finetuned_pipeline`).

Example:
    >>> errors = channel_errors(db, "vgg16", taps=["conv1", "conv2", "conv3", "conv4", "conv5"])  # doctest: +SKIP
    >>> result = finetune(errors, db)  # doctest: +SKIP
    >>> result.report  # before/after SROCC and PLCC on the held-out references  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from percept.errors import InputError, SpecError
from percept.eval.datasets import IQADatabase
from percept.eval.select import MapScores
from percept.eval.sweep.options import FeatureOptions, merge_options

FORMAT = "percept-channel-weights/1"


def channel_errors(db: IQADatabase, backbone, options: FeatureOptions | None = None, **overrides: Any) -> MapScores:
    """Per-channel errors ``e[p, c] = mean_hw (x̂_c - ŷ_c)^2`` (unit-normalised channels) for every pair.

    Args:
        db: the database.
        backbone: a name or a built backbone.
        options: a :class:`~percept.eval.sweep.FeatureOptions` (taps, weights, resize, batch_size, workers,
            device, progress, network_resize, as :func:`percept.eval.select.map_scores`); ``taps=None``
            means the backbone's canonical taps (the LPIPS ones for VGG/AlexNet). Default ``FeatureOptions()``.
        **overrides: fields of :class:`~percept.eval.sweep.FeatureOptions`, applied over ``options``.

    Returns:
        :class:`~percept.eval.select.MapScores` with ``measure="unit-l2"`` (a distance per channel).

    Example:
        >>> channel_errors(db, "alexnet", weights=None).matrix.shape  # doctest: +SKIP
        (3000, 1152)
        >>> channel_errors(db, "alexnet", FeatureOptions(weights=None, resize=64))  # doctest: +SKIP
    """
    from percept.eval.select import map_scores
    from percept.eval.sweep import build_backbone

    options = merge_options(FeatureOptions, options, overrides)
    net = build_backbone(backbone, weights=options.weights, network_resize=options.network_resize)
    taps = options.taps or net.canonical_taps
    scores = map_scores(db, net, dataclasses.replace(options.features(), taps=taps), measure="unit-l2")
    scores.weights = _recorded(net, options.weights)
    return scores


def _recorded(net: Any, weights: Any) -> str | None:
    """The weights as the result file records them: ``"random:SEED"`` for random ones, else as given."""
    from percept.backbones.factory import reproducible_weights

    recorded = reproducible_weights(net, weights)
    return None if recorded is None else str(recorded)


@dataclass
class FinetuneResult:
    """Learned weights and how they did.

    Attributes:
        weights: ``{tap: (C,) non-negative weights}``.
        report: ``{split: {"srocc_before", "srocc_after", "plcc_before", "plcc_after"}}`` for
            ``train``, ``val`` and ``test`` (oriented: positive is agreement).
        history: per epoch ``(train loss, validation loss)``.
        splits: reference ids of each split.
        meta: backbone, weights, resize, database.
    """

    weights: dict[str, np.ndarray]
    report: dict[str, dict[str, float]]
    history: list[tuple[float, float]]
    splits: dict[str, list[str]]
    meta: dict[str, Any]

    def save(self, path: str | os.PathLike) -> Path:
        """Write JSON that :func:`finetuned_pipeline` loads."""
        path = Path(path)
        data = {"format": FORMAT, **self.meta, "weights": {t: w.tolist() for t, w in self.weights.items()},
                "report": self.report, "splits": self.splits}  # fmt: skip
        from percept.io import write_text

        write_text(path, json.dumps(data, indent=1, default=str))
        return path


def split_references(db: IQADatabase, fractions=(0.6, 0.2, 0.2), seed: int = 0) -> dict[str, list[str]]:
    """Split reference ids into ``train``, ``val`` and ``test`` (disjoint; every pair of a reference in one split).

    Example:
        >>> {k: len(v) for k, v in split_references(db).items()}  # doctest: +SKIP
        {'train': 15, 'val': 5, 'test': 5}
    """
    refs = np.array(db.references)
    if len(refs) < 3:
        raise InputError(f"reference-disjoint train/val/test splits need at least 3 references, got {len(refs)}")
    rng = np.random.default_rng(seed)
    refs = refs[rng.permutation(len(refs))]
    n_val = max(1, round(fractions[1] * len(refs)))
    n_test = max(1, round(fractions[2] * len(refs)))
    n_train = len(refs) - n_val - n_test
    if n_train < 1:
        raise InputError(f"no reference left for training with {len(refs)} references and fractions {fractions}")
    return {"train": refs[:n_train].tolist(), "val": refs[n_train : n_train + n_val].tolist(),
            "test": refs[n_train + n_val :].tolist()}  # fmt: skip


def _pearson(d: torch.Tensor, badness: torch.Tensor) -> torch.Tensor:
    dc, bc = d - d.mean(), badness - badness.mean()
    return (dc * bc).sum() / torch.sqrt((dc * dc).sum() * (bc * bc).sum() + 1e-12)


def _rank_loss(d: torch.Tensor, badness: torch.Tensor, max_pairs: int = 1_000_000, seed: int = 0) -> torch.Tensor:
    """Pairwise logistic ranking loss: every pair of pairs when there are few, else a fixed random sample."""
    n = d.numel()
    if n * (n - 1) // 2 <= max_pairs:
        i, j = torch.triu_indices(n, n, offset=1)
    else:
        generator = torch.Generator().manual_seed(seed)
        i = torch.randint(0, n, (max_pairs,), generator=generator)
        j = torch.randint(0, n, (max_pairs,), generator=generator)
    order = torch.sign(badness[i] - badness[j])
    scale = d.detach().std().clamp_min(1e-12)
    return torch.nn.functional.softplus(-order * (d[i] - d[j]) / scale).mean()


def finetune(
    errors: MapScores,
    db: IQADatabase,
    *,
    loss: str = "plcc",
    splits: dict[str, list[str]] | None = None,
    epochs: int = 500,
    lr: float = 0.05,
    patience: int = 50,
    seed: int = 0,
) -> FinetuneResult:
    """Learn non-negative channel weights on the train references, stop early on the validation ones.

    Args:
        errors: from :func:`channel_errors`.
        db: the database (scores, kind and reference ids).
        loss: ``"plcc"`` (1 - Pearson of distance with badness) or ``"rank"`` (pairwise logistic
            ranking loss on random pairs).
        splits: ``{"train", "val", "test"}`` reference ids; default :func:`split_references`.
        epochs: full-batch Adam steps at most.
        lr: Adam's learning rate on ``theta`` (``w = softplus(theta)``, starting at ``w = 1``).
        patience: stop after this many steps without a better validation loss; the best weights are kept.
        seed: seeds the split and, on large splits, the rank loss's fixed sample of pairs.

    Returns:
        A :class:`FinetuneResult`; ``report`` has SROCC and PLCC before (all weights 1) and after, per split.

    Example:
        >>> result = finetune(errors, db, loss="rank")  # doctest: +SKIP
        >>> result.report["test"]["srocc_after"] > result.report["test"]["srocc_before"]  # doctest: +SKIP
    """
    if loss not in ("plcc", "rank"):
        raise SpecError(f"loss must be 'plcc' or 'rank', got {loss!r}")
    if errors.matrix.shape[0] != len(db):
        raise InputError(f"expected an error matrix with {len(db)} rows (one per pair), got {errors.matrix.shape}")
    splits = splits or split_references(db, seed=seed)
    ref_ids = db.table["ref_id"].to_numpy()
    rows = {k: np.flatnonzero(np.isin(ref_ids, v)) for k, v in splits.items()}
    for name in ("train", "val"):
        if rows[name].size < 3:
            raise InputError(f"the {name} split has {rows[name].size} pairs; it needs at least 3")
    E = torch.from_numpy(errors.matrix.astype(np.float32))
    scale = E.mean(0).clamp_min(1e-12)  # per-channel scale: makes the weights' learning rate uniform
    badness = torch.from_numpy(-db.quality).float()

    def objective(index: np.ndarray, w: torch.Tensor) -> torch.Tensor:
        d = (E[index] / scale) @ w
        if loss == "plcc":
            return 1 - _pearson(d, badness[index])
        return _rank_loss(d, badness[index], seed=seed)

    best, history = _descend(objective, E.shape[1], rows, epochs=epochs, lr=lr, patience=patience)
    w = (torch.nn.functional.softplus(best) / scale).numpy()  # weights on the unscaled errors
    report = _report(errors, db, rows, w)
    weights: dict[str, np.ndarray] = {}
    taps = np.array(errors.taps)
    for tap in dict.fromkeys(errors.taps):
        weights[tap] = w[taps == tap]
    meta = dict(backbone=errors.backbone, weights_source=errors.weights, resize=errors.resize,
                database=errors.database, loss=loss, network_resize=errors.network_resize,
                weights_checksum=errors.weights_checksum, signature=errors.signature)  # fmt: skip
    return FinetuneResult(weights, report, history, splits, meta)


def _descend(
    objective: Callable[[np.ndarray, torch.Tensor], torch.Tensor],
    channels: int,
    rows: dict[str, np.ndarray],
    *,
    epochs: int,
    lr: float,
    patience: int,
) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """Full-batch Adam on ``theta`` (``w = softplus(theta)``, from ``w = 1``) against ``objective(rows, w)`` on
    the train rows, stopped after ``patience`` steps without a better validation loss: ``(best theta, history)``."""
    theta = torch.full((channels,), float(np.log(np.expm1(1.0))), requires_grad=True)
    optimiser = torch.optim.Adam([theta], lr=lr)
    best, best_val, wait, history = theta.detach().clone(), float("inf"), 0, []
    for _ in range(epochs):
        optimiser.zero_grad()
        train_loss = objective(rows["train"], torch.nn.functional.softplus(theta))
        train_loss.backward()
        optimiser.step()
        with torch.no_grad():
            val_loss = float(objective(rows["val"], torch.nn.functional.softplus(theta)))
        history.append((float(train_loss.detach()), val_loss))
        if val_loss < best_val - 1e-6:
            best, best_val, wait = theta.detach().clone(), val_loss, 0
        else:
            wait += 1
            if wait >= patience:
                break
    return best, history


def _report(errors: MapScores, db: IQADatabase, rows: dict[str, np.ndarray], w: np.ndarray) -> dict[str, dict]:
    """SROCC and PLCC with the badness before (all weights 1) and after (``w``), per split of 3 pairs or more."""
    from percept.eval.stats import plcc, srocc

    report = {}
    for name, index in rows.items():
        if index.size < 3:
            continue
        before = errors.matrix[index].sum(1)
        after = errors.matrix[index] @ w
        bad = -db.quality[index]
        report[name] = {
            "srocc_before": srocc(before, bad),
            "srocc_after": srocc(after, bad),
            "plcc_before": plcc(before, bad),
            "plcc_after": plcc(after, bad),
            "pairs": int(index.size),
        }
    return report


def load_channel_weights(path: str | os.PathLike) -> dict[str, Any]:
    """Read a file written by :meth:`FinetuneResult.save`, checking every field the metric is built from.

    Raises:
        InputError: naming the file and the field at fault: ``weights`` must map tap names to lists of
            finite numbers >= 0, not all 0, small enough that a distance cannot overflow float32 (each
            channel's error is at most 4 for unit-normalised channels).

    Example:
        >>> load_channel_weights("/nonexistent.json")
        Traceback (most recent call last):
        ...
        percept.errors.InputError: channel-weights file '/nonexistent.json' does not exist
    """
    from percept.eval.select import check_recorded_source, read_json_file

    data = read_json_file(path, "channel-weights")
    where = f"channel-weights file '{path}'"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"'{path}' is not a channel-weights file (expected JSON with format {FORMAT!r})")
    check_recorded_source(data, where, "weights_source")
    weights = data.get("weights")
    if not isinstance(weights, dict) or not weights:
        raise InputError(f"{where}: field 'weights' must map tap names to lists of channel weights")
    total = 0.0
    for tap, values in weights.items():
        if not isinstance(values, list) or not values:
            raise InputError(f"{where}: weights[{tap!r}] must be a non-empty list of numbers, got {values!r}")
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float)]
        if bad:
            raise InputError(f"{where}: weights[{tap!r}] holds {bad[0]!r}; expected numbers")
        array = np.asarray(values, dtype=np.float64)
        if not np.isfinite(array).all() or (array < 0).any():
            bad_value = array[~np.isfinite(array) | (array < 0)][0]
            raise InputError(f"{where}: weights[{tap!r}] holds {bad_value}; channel weights are finite and >= 0")
        total += float(array.sum())
    if total == 0:
        raise InputError(f"{where}: every channel weight is 0; the metric would be 0 for every pair")
    if 4 * total > float(np.finfo(np.float32).max):
        raise InputError(f"{where}: channel weights summing to {total:.3g} overflow float32 distances")
    return data


def finetuned_pipeline(result: str | os.PathLike | FinetuneResult, *, weights="from-file", input_range=(0.0, 1.0)):
    """The fine-tuned metric: ``unit`` readout with the learned channel weights, ``l2`` distance, per tap summed.

    Args:
        result: a :class:`FinetuneResult` or the JSON it saved.
        weights: backbone weights; ``"from-file"``: those the errors were computed with.
        input_range: the range of the images passed.

    Returns:
        A :class:`~percept.pipeline.Pipeline` whose distance equals ``errors @ w`` for the pairs it was fitted on.

    Example:
        >>> metric = finetuned_pipeline("vgg16-tid2013-weights.json")  # doctest: +SKIP
    """
    from percept.builtin.distances import L2
    from percept.eval.select.files import check_taps_of, recorded_backbone
    from percept.pipeline import Pipeline
    from percept.readouts.base import ChannelWeightedReadout

    if isinstance(result, FinetuneResult):
        data = {**result.meta, "weights": {t: w.tolist() for t, w in result.weights.items()}}
        where = "fine-tuned result"
    else:
        data = load_channel_weights(result)
        where = f"channel-weights file '{result}'"
    backbone = recorded_backbone(data, where, "weights_source", weights=weights, input_range=input_range)
    taps = list(data["weights"])
    check_taps_of(backbone, data["weights"], where, "weights", per_channel=True)
    readouts = [
        ChannelWeightedReadout(backbone.tap_info(t).channels, torch.tensor(data["weights"][t]), normalize=True)
        for t in taps
    ]
    return Pipeline(backbone, taps, readouts, L2(), spec=f"finetuned({data['backbone']}: {', '.join(taps)})")
