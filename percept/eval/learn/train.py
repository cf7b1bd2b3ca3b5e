"""``train_heads``: LPIPS' heads learned for any backbone's taps on 2AFC judgements, and their held-out score.

Example:
    >>> from percept.eval.datasets import load_database
    >>> db = load_database("bapps", "/data/bapps")  # doctest: +SKIP
    >>> train = db_subsets(db, "train/*")  # doctest: +SKIP
    >>> result = train_heads(train, "alexnet", val=db_subsets(db, "val/*"))  # doctest: +SKIP
    >>> result.scores["after"]  # 2AFC on the held-out triplets  # doctest: +SKIP
    >>> result.save("learned-alex")  # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from percept.backbones.base import Backbone
from percept.errors import InputError, SpecError
from percept.eval.learn.features import TripletFeatures, load_images, tap_differences, triplet_features
from percept.eval.learn.files import (
    FORMAT,
    LPIPS_BACKBONES,
    TUNED,
    backbone_options,
    heads_pipeline,
    normalization_record,
    weights_record,
    write_heads,
)
from percept.eval.learn.heads import HeadsOptions, LinearHeads, StepModel, make_step_model, run_epochs, with_options


def db_subsets(db, patterns: str | Sequence[str] | None):
    """The triplets of ``db`` whose ``subset`` matches one of ``patterns`` (shell patterns: ``"train/*"``).

    Raises:
        InputError: no subset matches (the message lists the subsets there are).

    Example:
        >>> db_subsets(db, ["val/*"]).table["subset"].unique()  # doctest: +SKIP
        array(['val/synthetic'], dtype=object)
    """
    from percept.eval.datasets.model import TwoAFCDatabase

    if patterns is None:
        return db
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    subsets = db.table["subset"].astype(str)
    keep = np.zeros(len(subsets), dtype=bool)
    for pattern in patterns:
        keep |= np.array([fnmatch.fnmatchcase(s, pattern) for s in subsets])
    if not keep.any():
        raise InputError(f"no subset of '{db.root}' matches {patterns}; subsets there: {sorted(set(subsets))}")
    return TwoAFCDatabase(db.name, db.table[keep].reset_index(drop=True), db.root)


def prepare_backbone(backbone: str | Backbone, options: HeadsOptions) -> tuple[Backbone, dict[str, Any]]:
    """The network to learn on and its weights record.

    A name is built with ``options.weights`` (``None``: ``"random:<options.seed>"``), with LPIPS' input scaling
    for alexnet, vgg16 and squeezenet1_1 unless ``lpips_scaling`` says otherwise; a built :class:`Backbone`
    is used as it is (LPIPS' scaling only if ``lpips_scaling=True``, which changes its normalisation).
    """
    from percept.backbones.factory import create_backbone
    from percept.builtin.lpips import LPIPS_SCALE, LPIPS_SHIFT

    if isinstance(backbone, str):
        weights = f"random:{options.seed}" if options.weights is None else options.weights
        net = create_backbone(backbone, weights=weights)
        scaling = backbone in LPIPS_BACKBONES if options.lpips_scaling is None else options.lpips_scaling
    elif isinstance(backbone, Backbone):
        net, weights, scaling = backbone, None, bool(options.lpips_scaling)
    else:
        raise InputError(f"backbone must be a name or a percept Backbone, got {type(backbone).__name__}")
    if tuple(net.input_range) != (0.0, 1.0):
        raise InputError(f"the backbone must take images in [0, 1] (input_range), got {net.input_range}")
    if scaling:
        net.set_normalization(LPIPS_SHIFT, LPIPS_SCALE, domain=(-1.0, 1.0))
    return net.to(options.device), weights_record(net, weights)


def initial_heads(net: Backbone, taps: Sequence[str], init: str) -> list[torch.Tensor] | None:
    """LPIPS v0.1's published heads for ``init="lpips"`` (alexnet, vgg16, squeezenet1_1 on LPIPS' taps), else None."""
    if init != "lpips":
        return None
    from percept.builtin.lpips import LPIPS_NETS, load_lpips_heads, torchmetrics_lpips_file

    nets = {arch: (short, list(t)) for short, (arch, t) in LPIPS_NETS.items()}
    if net.name not in nets or list(taps) != nets[net.name][1]:
        known = ", ".join(f"{a} ({','.join(t)})" for a, (_, t) in nets.items())
        raise SpecError(f"init='lpips' needs one of LPIPS' networks on its taps: {known}; got {net.name} {list(taps)}")
    channels = [net.tap_info(t).channels for t in taps]
    return load_lpips_heads(torchmetrics_lpips_file(nets[net.name][0]), channels)


def heads_distances(heads: LinearHeads, feats: TripletFeatures, index: np.ndarray, device) -> tuple:
    """``(d0, d1, judge)`` of the triplets ``index`` from cached differences (dropout as the heads' mode)."""
    d0, d1, judge = feats.batch(index, device)
    return heads(d0), heads(d1), judge


def score_features(heads: torch.Tensor | list[torch.Tensor], feats: TripletFeatures) -> dict[str, float]:
    """2AFC agreement per subset (and ``"all"``) of pooled features under heads ``(C,)`` per tap (ones: unweighted).

    Example:
        >>> score_features(result.heads_list(), val_features)  # doctest: +SKIP
        {'val/synthetic': 0.81, 'all': 0.81}
    """
    from percept.eval.stats import two_afc_agreement

    d0 = sum(
        torch.as_tensor(np.asarray(a), dtype=torch.float32) @ w.float() for a, w in zip(feats.d0, heads, strict=True)
    )
    d1 = sum(
        torch.as_tensor(np.asarray(a), dtype=torch.float32) @ w.float() for a, w in zip(feats.d1, heads, strict=True)
    )
    assert isinstance(d0, torch.Tensor) and isinstance(d1, torch.Tensor)
    judge = feats.judge.numpy()
    out = {}
    for subset in sorted(set(feats.subset)):
        mask = feats.subset == subset
        out[str(subset)] = two_afc_agreement(d0.numpy()[mask], d1.numpy()[mask], judge[mask])
    out["all"] = two_afc_agreement(d0.numpy(), d1.numpy(), judge)
    return out


@dataclass
class HeadsResult:
    """What :func:`train_heads` learned.

    Attributes:
        backbone: the network (tuned, if ``tune_trunk``).
        taps: tap names.
        heads: per tap, ``(C,)`` non-negative weights.
        rank: the ranking network's state dict.
        options: the training options.
        weights: ``{"source", "checksum"}`` of the network's weights (source: a tag, a path, ``random:SEED``,
            ``given`` or ``tuned``).
        losses: mean training loss of each epoch.
        scores: ``{"before": {...}, "after": {...}}`` held-out 2AFC per subset and ``"all"`` (``before``: every
            channel weighted 1, the uncalibrated unit/l2 metric of the same network and taps); empty without ``val``.
        data: the data trained and scored on (database, path, subsets, n).
    """

    backbone: Backbone
    taps: list[str]
    heads: list[torch.Tensor]
    rank: dict[str, torch.Tensor]
    options: HeadsOptions
    weights: dict[str, Any]
    losses: list[float]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The ``heads.json`` fields (provenance, options, scores)."""
        from percept import __version__

        options = {k: v for k, v in asdict(self.options).items() if k not in ("device", "progress", "cache")}
        options["weights"] = self.weights["source"]
        return {"format": FORMAT, "backbone": self.backbone.name, "backbone_options": backbone_options(self.backbone),
                "taps": self.taps, "channels": [int(h.numel()) for h in self.heads],
                "normalization": normalization_record(self.backbone), "weights": self.weights, "data": self.data,
                "training": options, "losses": self.losses, "scores": self.scores,
                "percept": __version__}  # fmt: skip

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/heads.json`` and its tensor file (see :mod:`percept.eval.learn.files`); returns the json."""
        tensors = {f"heads.{i}": h for i, h in enumerate(self.heads)}
        tensors.update({f"rank.{k}": v for k, v in self.rank.items()})
        if self.weights["source"] == TUNED:
            tensors.update({f"trunk.{k}": v for k, v in self.backbone.model.state_dict().items()})
        record = self.record()
        try:
            from percept.signature import signature  # type: ignore[import-not-found,unused-ignore]

            record["signature"] = signature(self.pipeline())
        except ImportError:  # percept without signatures
            pass
        return write_heads(folder, record, tensors)

    def pipeline(self):
        """The learned metric as a :class:`~percept.pipeline.Pipeline` (LPIPS' arithmetic, these heads)."""
        from percept.builtin.distances import L2
        from percept.pipeline import Pipeline
        from percept.readouts.base import ChannelWeightedReadout

        readouts = [ChannelWeightedReadout(h.numel(), h, normalize=True) for h in self.heads]
        spec = f"learned-heads({self.backbone.name}:{','.join(self.taps)})"
        return Pipeline(self.backbone, self.taps, readouts, L2(), spec=spec)


def _data_record(train, val) -> dict[str, Any]:
    record = {"database": train.name, "path": str(train.root), "train_subsets": sorted(set(train.table["subset"])),
              "n_train": len(train)}  # fmt: skip
    if val is not None:
        record.update(val_subsets=sorted(set(val.table["subset"])), n_val=len(val))
    return record


def _trunk_distances(model: StepModel, net: Backbone, taps: list[str], train, options: HeadsOptions):
    """``index -> (d0, d1, judge)`` running the (tuned) trunk on the images of every batch."""
    table, judge = train.table, torch.tensor(train.table["judge"].to_numpy(dtype=np.float32))

    def distances(index: np.ndarray):
        rows = table.iloc[index]
        ref, p0, p1 = (load_images(rows[k].tolist(), options.size).to(options.device) for k in ("ref", "p0", "p1"))
        d0, d1 = tap_differences(net, taps, ref, [p0, p1])
        return model.heads(d0), model.heads(d1), judge[torch.as_tensor(index)].to(options.device)

    return distances


def train_heads(
    train, backbone: str | Backbone = "alexnet", options: HeadsOptions | None = None, *, val=None, **overrides: Any
) -> HeadsResult:
    """Learn LPIPS heads for ``backbone``'s taps on the 2AFC triplets ``train`` (LPIPS' trainer, exactly).

    Args:
        train: a :class:`~percept.eval.datasets.model.TwoAFCDatabase` (:func:`db_subsets` picks subsets).
        backbone: a backbone name (built with ``options.weights``) or a built :class:`Backbone` (used as it is).
        options: :class:`HeadsOptions` (LPIPS' defaults: 5 + 5 epochs, lr 1e-4, batch 50, dropout, 64 px).
        val: held-out triplets to score on, before (channels weighted 1) and after.
        **overrides: fields of :class:`HeadsOptions` (``epochs=2``, ``taps=[...]``, ...).

    Returns:
        A :class:`HeadsResult`; ``.save(DIR)`` writes ``DIR/heads.json``, ``.pipeline()`` is the metric.

    Raises:
        InputError: bad options or data; SpecError: an unknown tap, ``init="lpips"`` on another network.

    Example:
        >>> result = train_heads(train, "alexnet", weights=None, epochs=1, decay_epochs=0)  # doctest: +SKIP
        >>> [h.min().item() >= 0 for h in result.heads]  # doctest: +SKIP
        [True, True, True, True, True]
    """
    options = with_options(options, overrides)
    net, weights = prepare_backbone(backbone, options)
    taps = [info.name for info in net.resolve_taps(options.taps)]
    initial = initial_heads(net, taps, options.init)
    channels = [net.tap_info(t).channels for t in taps]
    with torch.random.fork_rng(devices=[]):  # initial heads, ranking net and dropout masks from the seed
        torch.manual_seed(options.seed)
        trunk = None
        if options.tune_trunk:
            trunk = net.model.requires_grad_(True)
            weights = {**weights, "source": TUNED, "base_source": weights["source"]}
        model = make_step_model(channels, options, initial, trunk)
        if trunk is None:
            feats = triplet_features(train, net, taps, size=options.size, pooled=not options.dropout,
                                     batch=options.feature_batch, device=options.device, progress=options.progress,
                                     cache=options.cache)  # fmt: skip

            def distances(index):
                return heads_distances(model.heads, feats, index, options.device)
        else:
            distances = _trunk_distances(model, net, taps, train, options)
        losses = run_epochs(model, len(train), distances, options)
    net.model.requires_grad_(False)
    if options.tune_trunk:
        from percept.backbones.weights import state_dict_checksum

        weights["checksum"] = state_dict_checksum(net.model)
    heads = model.heads.as_vectors()
    rank = {k: v.detach().cpu().clone() for k, v in model.rank.state_dict().items()}
    result = HeadsResult(net, taps, heads, rank, options, weights, losses, data=_data_record(train, val))
    if val is not None:
        with torch.random.fork_rng(devices=[]):
            held_out = triplet_features(val, net, taps, size=options.size, pooled=True, batch=options.feature_batch,
                                        device=options.device, progress=options.progress)  # fmt: skip
        result.scores = {"before": score_features([torch.ones(c) for c in channels], held_out),
                         "after": score_features(heads, held_out)}  # fmt: skip
    return result


__all__ = ["HeadsResult", "db_subsets", "heads_pipeline", "prepare_backbone", "score_features", "train_heads"]
