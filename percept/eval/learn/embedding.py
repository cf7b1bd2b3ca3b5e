"""DreamSim's training for any embedding metric: LoRA on the attention of frozen transformers, hinge loss on 2AFC.

:func:`train_embedding` tunes the embedding metric of one or several transformers
(:mod:`percept.builtin.embedding`: class tokens or image embeddings, concatenated, ``1 - cos``) on 2AFC
triplets as DreamSim trains on NIGHTS (``training/train.py``, ``configs/train_ensemble_model_lora.yaml``):
LoRA (:class:`percept.builtin.lora.LoRALinear`) on every attention ``qkv`` projection, rank 16, alpha 8,
dropout 0.3; Adam, lr 3e-4, betas (0.5, 0.999), no weight decay; batches of 16; 6 epochs; DreamSim's hinge
loss (:func:`hinge_loss`). The base networks stay frozen; only the LoRA matrices train.

The result saves as ``DIR/embedding.json`` + ``DIR/lora.safetensors`` (:func:`percept.builtin.lora.write_embedding`)
and reloads with ``PerceptualLoss("learned-embedding", file="DIR/embedding.json")``. ``percept learn ...
--method lora`` runs it from the command line (:func:`run_lora`).

Example:
    >>> from percept.eval.datasets import load_database
    >>> db = load_database("nights", "/data/nights")  # doctest: +SKIP
    >>> train, val = db_subsets(db, "train/*"), db_subsets(db, "val/*")  # doctest: +SKIP
    >>> result = train_embedding(train, members=["dreamsim"], val=val)  # doctest: +SKIP
    >>> result.save("dreamsim-tuned")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from percept.builtin.dreamsim import DREAMSIM_MEMBERS, DREAMSIM_NORMALIZATION
from percept.builtin.lora import (
    FORMAT,
    RANDOM,
    apply_lora,
    base_checksum,
    build_embedding_metric,
    lora_layers,
    lora_tensors,
    write_embedding,
)
from percept.errors import InputError, unknown_name
from percept.pipeline import Pipeline


@dataclass
class EmbeddingOptions:
    """How :func:`train_embedding` trains (DreamSim's recipe by default).

    Attributes:
        members: ``"<backbone>[:<tap>]"`` strings (``"timm.vit_small_patch16_224.dino:cls"``), or ``["dreamsim"]``
            for DreamSim's three networks with DreamSim's input normalisation.
        weights: the base networks' weights (``"imagenet"``, a tag, a file, or ``None``: random, drawn from ``seed``).
        center: centre the concatenated embedding before the cosine (DreamSim's ``normalize_embeds``).
        normalize_each: L2-normalise each member's embedding before concatenating.
        size: images are resized to ``size x size`` (DreamSim: 224) on loading and in the metric.
        rank, alpha, dropout, targets: LoRA's rank ``r``, scale numerator (``alpha / r``), dropout, and the names
            of the linear layers adapted.
        lr, betas, batch_size, epochs: Adam's learning rate and betas, triplets per step, passes over the data.
        margin: the hinge loss's margin.
        seed: LoRA's initial ``A``, the batch order, dropout, and random base weights.
        device: where to train (``"cpu"``, ``"cuda"``).

    Example:
        >>> EmbeddingOptions(members=["dreamsim"]).rank
        16
    """

    members: Sequence[str] = ("timm.vit_small_patch16_224.dino:cls",)
    weights: Any = "imagenet"
    center: bool = True
    normalize_each: bool = False
    size: int = 224
    rank: int = 16
    alpha: float = 8.0
    dropout: float = 0.3
    targets: Sequence[str] = ("qkv",)
    lr: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 16
    epochs: int = 6
    margin: float = 0.05
    seed: int = 0
    device: str = "cpu"


def embedding_options(options: EmbeddingOptions | None, overrides: Mapping[str, Any]) -> EmbeddingOptions:
    """``options`` (default :class:`EmbeddingOptions`) with ``overrides`` applied and checked.

    Raises:
        InputError: an unknown option (with the closest names) or a value out of range.

    Example:
        >>> embedding_options(None, {"epochs": 2}).epochs
        2
    """
    names = [f.name for f in dataclasses.fields(EmbeddingOptions)]
    for key in overrides:
        if key not in names:
            raise InputError(unknown_name("option", key, names))
    out = dataclasses.replace(options or EmbeddingOptions(), **dict(overrides))
    if isinstance(out.members, str):
        out.members = [out.members]
    for name, low in (("epochs", 0), ("batch_size", 1), ("size", 1), ("rank", 1)):
        value = getattr(out, name)
        if not isinstance(value, int) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    if not out.members:
        raise InputError("members must name at least one transformer, e.g. ['timm.vit_small_patch16_224.dino:cls']")
    if not (0.0 <= out.dropout < 1.0 and out.lr > 0 and out.margin >= 0):
        raise InputError(f"expected 0 <= dropout < 1, lr > 0, margin >= 0; got {out.dropout}, {out.lr}, {out.margin}")
    return out


def hinge_loss(d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor, margin: float = 0.05) -> torch.Tensor:
    """DreamSim's hinge loss over a batch: ``mean(max(0, margin - (d0 - d1) t))`` with ``t = 2 round(judge) - 1``.

    ``judge`` is the fraction of people who found ``p1`` closer; rounded (halves to even, as ``torch.round``:
    0.5 gives 0), it says which side should be nearer by at least ``margin``.

    Example:
        >>> hinge_loss(torch.tensor([0.3, 0.3]), torch.tensor([0.2, 0.2]), torch.tensor([1.0, 0.0]))
        tensor(0.0750)
    """
    target = 2.0 * torch.round(judge) - 1.0
    return torch.clamp(margin - (d0 - d1) * target, min=0.0).mean()


def _member_setup(options: EmbeddingOptions) -> tuple[list[str], Any]:
    if list(options.members) == ["dreamsim"]:
        return list(DREAMSIM_MEMBERS), [list(map(list, pair)) for pair in DREAMSIM_NORMALIZATION]
    return list(options.members), None


def build_base(options: EmbeddingOptions) -> tuple[Pipeline, dict[str, Any]]:
    """The untuned metric of ``options.members`` and its weights record ``{"source", "seed", "checksum"}``.

    Example:
        >>> options = EmbeddingOptions(members=["timm.vit_tiny_patch16_224:cls"], weights=None)
        >>> pipeline, weights = build_base(options)  # doctest: +SKIP
        >>> weights["source"]  # doctest: +SKIP
        'random'
    """
    members, normalization = _member_setup(options)
    random = options.weights is None
    pipeline = build_embedding_metric(
        members, weights=options.weights, seed=options.seed if random else None, center=options.center,
        normalize_each=options.normalize_each, size=options.size, normalization=normalization, spec="learned-embedding",
    )  # fmt: skip
    pipeline.check_inputs = False  # the loader makes the batches
    source = RANDOM if random else str(options.weights)
    return pipeline, {"source": source, "seed": options.seed if random else None, "checksum": base_checksum(pipeline)}


def triplet_distances(pipeline: Pipeline, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor) -> tuple:
    """``(d0, d1)``, each ``(N,)``: one pass of the networks over the three batches together.

    Example:
        >>> d0, d1 = triplet_distances(metric, ref, p0, p1)  # doctest: +SKIP
    """
    n = ref.shape[0]
    features = pipeline.backbone(torch.cat([ref, p0, p1]), pipeline.taps)
    parts = [{tap: value[i * n : (i + 1) * n] for tap, value in features.items()} for i in range(3)]
    d0 = sum(pipeline.feature_distances(parts[0], parts[1]).values())
    d1 = sum(pipeline.feature_distances(parts[0], parts[2]).values())
    return d0, d1


def _batch(db, index: np.ndarray, options: EmbeddingOptions) -> tuple[torch.Tensor, ...]:
    from percept.eval.learn.features import load_images

    rows = db.table.iloc[index]
    images = (load_images(rows[k].tolist(), options.size).to(options.device) for k in ("ref", "p0", "p1"))
    judge = torch.tensor(rows["judge"].to_numpy(dtype=np.float32), device=options.device)
    return (*images, judge)


@torch.no_grad()
def score_2afc(pipeline: Pipeline, db, options: EmbeddingOptions) -> dict[str, float]:
    """Held-out 2AFC agreement per subset and over ``"all"`` (LoRA dropout off).

    Example:
        >>> score_2afc(metric, val, EmbeddingOptions(size=64))  # doctest: +SKIP
        {'val/synthetic': 0.71, 'all': 0.71}
    """
    from percept.eval.stats import two_afc_agreement

    modes = [layer.training for layer in lora_layers(pipeline)]
    for layer in lora_layers(pipeline):
        layer.train(False)
    d0s, d1s = [], []
    for start in range(0, len(db), options.batch_size):
        ref, p0, p1, _ = _batch(db, np.arange(start, min(start + options.batch_size, len(db))), options)
        d0, d1 = triplet_distances(pipeline, ref, p0, p1)
        d0s.append(d0.cpu())
        d1s.append(d1.cpu())
    for layer, mode in zip(lora_layers(pipeline), modes, strict=True):
        layer.train(mode)
    d0, d1 = torch.cat(d0s).numpy(), torch.cat(d1s).numpy()
    judge, subsets = db.table["judge"].to_numpy(dtype=float), db.table["subset"].astype(str).to_numpy()
    scores = {
        s: two_afc_agreement(d0[subsets == s], d1[subsets == s], judge[subsets == s]) for s in sorted(set(subsets))
    }
    scores["all"] = two_afc_agreement(d0, d1, judge)
    return scores


@dataclass
class EmbeddingResult:
    """What :func:`train_embedding` learned: the tuned metric and its provenance.

    Attributes:
        pipeline: the tuned metric (LoRA in eval mode).
        options: the training options.
        weights: ``{"source", "seed", "checksum"}`` of the base networks (before LoRA).
        modules: the module paths adapted with LoRA.
        losses: mean hinge loss of each epoch.
        scores: ``{"before": {...}, "after": {...}}`` held-out 2AFC per subset and ``"all"``; empty without ``val``.
        data: the data trained and scored on.

    Example:
        >>> result = train_embedding(train, members=["timm.vit_tiny_patch16_224:cls"], weights=None)  # doctest: +SKIP
        >>> result.save("tuned")  # doctest: +SKIP
        PosixPath('tuned/embedding.json')
    """

    pipeline: Pipeline
    options: EmbeddingOptions
    weights: dict[str, Any]
    modules: list[str]
    losses: list[float]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The ``embedding.json`` fields."""
        from percept import __version__

        o = self.options
        members = [f"{b.name.removeprefix('embed.')}:{t}" for b, t in self.pipeline.backbone.members]  # type: ignore[union-attr]
        norms = [[b.mean.flatten().tolist(), b.std.flatten().tolist()] for b, _ in self.pipeline.backbone.members]  # type: ignore[union-attr]
        training = {k: v for k, v in dataclasses.asdict(o).items() if k not in ("device", "members", "weights")}
        return {"format": FORMAT, "members": members, "center": o.center, "normalize_each": o.normalize_each,
                "size": o.size, "normalization": norms, "weights": self.weights,
                "lora": {"rank": o.rank, "alpha": o.alpha, "dropout": o.dropout, "targets": list(o.targets),
                         "modules": self.modules},
                "data": self.data, "training": training, "losses": self.losses, "scores": self.scores,
                "percept": __version__}  # fmt: skip

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/embedding.json`` and ``folder/lora.safetensors``; returns the json's path."""
        from percept.signature import signature

        record = self.record()
        record["signature"] = signature(self.pipeline)  # what the tuned metric's numbers depend on
        return write_embedding(folder, record, lora_tensors(self.pipeline.backbone))


def _epochs(pipeline: Pipeline, train, options: EmbeddingOptions) -> list[float]:
    layers = lora_layers(pipeline)
    params = [p for layer in layers for p in (layer.lora_A.weight, layer.lora_B.weight)]
    optimizer = torch.optim.Adam(params, lr=options.lr, betas=options.betas)
    order = torch.Generator().manual_seed(options.seed)
    losses = []
    for layer in layers:
        layer.train(True)
    for _ in range(options.epochs):
        total, seen = 0.0, 0
        for index in torch.randperm(len(train), generator=order).split(options.batch_size):
            ref, p0, p1, judge = _batch(train, index.numpy(), options)
            d0, d1 = triplet_distances(pipeline, ref, p0, p1)
            loss = hinge_loss(d0, d1, judge, options.margin)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, seen = total + float(loss) * len(index), seen + len(index)
        losses.append(total / max(seen, 1))
    for layer in layers:
        layer.train(False)
    return losses


def train_embedding(train, options: EmbeddingOptions | None = None, *, val=None, **overrides: Any) -> EmbeddingResult:
    """Tune an embedding metric with LoRA on 2AFC triplets, as DreamSim tunes its ensemble on NIGHTS.

    Args:
        train: a :class:`~percept.eval.datasets.model.TwoAFCDatabase` (``db_subsets`` picks subsets).
        options: :class:`EmbeddingOptions` (DreamSim's recipe by default).
        val: held-out triplets scored before and after.
        **overrides: fields of :class:`EmbeddingOptions` (``members=[...]``, ``epochs=2`` ...).

    Returns:
        An :class:`EmbeddingResult`; ``.save(DIR)`` writes the file ``learned-embedding`` reloads.

    Raises:
        InputError: bad options or data. SpecError: an unknown member or tap, or no ``qkv`` layer to adapt.

    Example:
        >>> members = ["timm.vit_tiny_patch16_224:cls"]
        >>> result = train_embedding(train, members=members, weights=None, epochs=1)  # doctest: +SKIP
        >>> result.scores["after"]["all"]  # doctest: +SKIP
    """
    options = embedding_options(options, overrides)
    if len(train) == 0:
        raise InputError("no training triplets")
    pipeline, weights = build_base(options)
    pipeline.to(options.device)
    before = score_2afc(pipeline, val, options) if val is not None else None
    with torch.random.fork_rng(devices=[]):  # LoRA's A and the dropout masks from the seed
        torch.manual_seed(options.seed)
        modules = apply_lora(
            pipeline.backbone, rank=options.rank, alpha=options.alpha, dropout=options.dropout, targets=options.targets
        )
        pipeline.to(options.device)
        losses = _epochs(pipeline, train, options)
    scores = {"before": before, "after": score_2afc(pipeline, val, options)} if before is not None else {}
    data = {"database": train.name, "path": str(train.root), "train_subsets": sorted(set(train.table["subset"])),
            "n_train": len(train)}  # fmt: skip
    if val is not None:
        data.update(val_subsets=sorted(set(val.table["subset"])), n_val=len(val))
    return EmbeddingResult(pipeline, options, weights, modules, losses, scores, data)


def run_lora(args: argparse.Namespace, train, val) -> Path:
    """``percept learn ... --method lora``: :func:`train_embedding` with the command's options; writes the file.

    ``--backbone`` lists the members, comma-separated (``timm.vit_small_patch16_224.dino:cls``, or ``dreamsim``);
    with one member and ``--taps``, that tap is read.

    Example:
        >>> main(["learn", "nights", "/data/nights", "--method", "lora", "--backbone", "dreamsim"])  # doctest: +SKIP
        0
    """
    from percept.cli.common import device_arg, split_list, weights_arg

    heads_only = [o for o, on in (("--tune-trunk", args.tune_trunk), ("--init lpips", args.init != "random"),
                                  ("--cache", args.cache is not None)) if on]  # fmt: skip
    if heads_only:
        raise InputError(f"{', '.join(heads_only)}: options of --method heads, not of --method lora")
    members = split_list(args.backbone) or []
    taps = split_list(args.taps) or []
    if len(members) == 1 and taps and ":" not in members[0]:
        members = [f"{members[0]}:{taps[0]}"]
    options = EmbeddingOptions(members=members, weights=weights_arg(args.weights), size=args.size, rank=args.rank,
                               alpha=args.alpha, dropout=args.lora_dropout, lr=args.lr, batch_size=args.batch_size,
                               epochs=args.epochs, margin=args.margin, seed=args.seed,
                               device=str(device_arg(args.device)))  # fmt: skip
    result = train_embedding(train, options, val=val)
    result.data["path"] = str(args.path)
    file = result.save(args.out)
    losses = ", ".join(f"{v:.4f}" for v in result.losses)
    print(f"{', '.join(members)}: LoRA on {len(result.modules)} layers, {len(train)} triplets, losses {losses}")
    if result.scores:
        print("subset                      2afc_before  2afc_after")
        for subset, before in result.scores["before"].items():
            print(f"{subset:26s}  {before:11.4f}  {result.scores['after'][subset]:10.4f}")
    return file


__all__: Sequence[str] = (
    "EmbeddingOptions",
    "EmbeddingResult",
    "build_base",
    "embedding_options",
    "hinge_loss",
    "run_lora",
    "score_2afc",
    "train_embedding",
    "triplet_distances",
)
