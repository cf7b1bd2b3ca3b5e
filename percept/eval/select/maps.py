"""The ``(pairs x maps)`` matrix a selection works on: every feature map of the chosen taps compared on its own."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from percept.errors import InputError, SpecError
from percept.eval.datasets import IQADatabase
from percept.eval.sweep.options import FeatureOptions, merge_options

if TYPE_CHECKING:  # pragma: no cover
    from percept.backbones.base import Backbone


PER_MAP = ("ssim", "mse", "unit-l2")


@dataclass
class MapScores:
    """Per-map scores of every pair: ``matrix[p, m]`` compares map ``m`` of pair ``p``.

    Attributes:
        matrix: ``(pairs, maps)`` float32.
        taps: ``(maps,)`` tap name of each map; ``channels``: ``(maps,)`` its channel in the tap.
        measure: ``"ssim"`` (a similarity: 1 for identical maps), ``"mse"`` or ``"unit-l2"`` (distances).
        backbone, weights, resize: how the features were made (saved with a selection); random weights are
            recorded as ``"random:SEED"`` (:func:`percept.backbones.factory.reproducible_weights`).
        weights_checksum: :func:`~percept.backbones.weights.state_dict_checksum` of the network.
        signature: :func:`percept.signature.backbone_signature` of the network and resize.
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
    weights_checksum: str | None = None
    signature: str | None = None

    @property
    def similarity(self) -> bool:
        """True when higher per-map scores mean more alike (SSIM)."""
        return self.measure == "ssim"

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` file (matrix and metadata) that :meth:`load` reads back."""
        path = Path(path)
        meta = dict(taps=self.taps, channels=self.channels, measure=self.measure, backbone=self.backbone,
                    weights=self.weights, resize=self.resize, database=self.database,
                    network_resize=self.network_resize, config=self.config, weights_checksum=self.weights_checksum,
                    signature=self.signature)  # fmt: skip
        from percept.io import atomic_write

        with atomic_write(path, "wb") as f:
            np.savez(f, matrix=self.matrix, meta=json.dumps(meta))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> MapScores:
        """Read a file written by :meth:`save`.

        Raises:
            InputError: the file is not such a file (truncated, empty, another ``.npz``, a matrix that is not
                a 2-D float array, metadata that does not match it); the message names the file and the fault.
        """
        import zipfile

        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                raw = np.asarray(data["matrix"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise InputError(f"'{path}' is not a map_scores file ({type(exc).__name__}: {exc})") from None
        if raw.ndim != 2 or raw.dtype.kind != "f":
            raise InputError(f"'{path}': matrix must be a 2-D float array, got {raw.dtype} of shape {raw.shape}")
        try:
            scores = cls(raw.astype(np.float32), **meta)
        except TypeError as exc:
            raise InputError(f"'{path}': unexpected metadata ({exc})") from None
        if not (len(scores.taps) == len(scores.channels) == raw.shape[1]):
            raise InputError(f"'{path}': {raw.shape[1]} matrix columns but {len(scores.taps)} taps recorded")
        return scores

    def problem(self, pairs: int, maps: int) -> str | None:
        """Why this matrix cannot stand for ``pairs`` x ``maps`` per-map scores (a cache of another run), or None.

        Example:
            >>> MapScores(np.zeros((2, 3), np.float32), ["a"] * 3, [0, 1, 2]).problem(2, 64)
            'a (2, 3) matrix, expected (2, 64)'
        """
        if self.matrix.shape != (pairs, maps):
            return f"a {self.matrix.shape} matrix, expected {(pairs, maps)}"
        if not np.isfinite(self.matrix).all():
            return "scores that are not finite numbers"
        return None


def default_taps(backbone: Backbone) -> list[str]:
    """Every convolutional layer's ReLU output (``relu*`` taps, e.g. AlexNet's 5, VGG16's 13), else the canonical taps.

    Example:
        >>> default_taps(create_backbone("vgg16", weights=None))[:3]  # doctest: +SKIP
        ['relu1_1', 'relu1_2', 'relu2_1']
    """
    relus = [t.name for t in backbone.feature_info if t.name.startswith("relu") and not t.canonical]
    return relus or backbone.canonical_taps


def map_channels(backbone: Backbone, taps: Sequence[str] | None = None) -> tuple[list, list[int]]:
    """The taps a selection compares (``taps`` or :func:`default_taps`) and each one's channel count: the
    matrix of :func:`map_scores` has ``sum(channels)`` columns.

    Example:
        >>> taps, channels = map_channels(create_backbone("alexnet", weights=None), ["relu1"])  # doctest: +SKIP
        >>> channels  # doctest: +SKIP
        [64]
    """
    from percept.eval.sweep.taps import sweep_taps

    tap_list = sweep_taps(backbone, list(taps) if taps else default_taps(backbone))
    return tap_list, [backbone.tap_info(t.module).channels if t.module else 3 for t in tap_list]


def map_scores(
    db: IQADatabase,
    backbone: str | Backbone,
    options: FeatureOptions | None = None,
    *,
    measure: str = "ssim",
    **overrides: Any,
) -> MapScores:
    """Compare every feature map of ``taps`` between each pair's reference and distorted image.

    One forward pass per reference image and one per batch of distorted images (as the sweep).

    Args:
        db: the database.
        backbone: a name or a built backbone.
        options: a :class:`~percept.eval.sweep.FeatureOptions`: taps (default :func:`default_taps`), weights,
            resize, batch_size, workers, device, progress, network_resize; default ``FeatureOptions()``.
        measure: ``"ssim"`` (SSIM between the two maps, as the study), ``"mse"``, or ``"unit-l2"``
            (squared difference of unit-normalised channels, the per-channel term of LPIPS).
        **overrides: fields of :class:`~percept.eval.sweep.FeatureOptions` (``taps=[...]``, ``resize=64``),
            applied over ``options``.

    Returns:
        :class:`MapScores` with a ``(len(db), total channels)`` matrix.

    Example:
        >>> ms = map_scores(db, "alexnet", taps=["relu1", "relu2"], weights=None)  # doctest: +SKIP
        >>> ms.matrix.shape  # doctest: +SKIP
        (3000, 256)
        >>> ms = map_scores(db, "alexnet", FeatureOptions(taps=["relu1", "relu2"], weights=None))  # doctest: +SKIP
    """
    from percept.backbones.weights import state_dict_checksum
    from percept.eval.sweep.taps import build_backbone
    from percept.signature import backbone_signature

    options = merge_options(FeatureOptions, options, overrides)
    if measure not in PER_MAP:
        raise SpecError(f"per-map measure must be one of {list(PER_MAP)}, got {measure!r}")
    name = backbone if isinstance(backbone, str) else backbone.name
    net = build_backbone(backbone, weights=options.weights, network_resize=options.network_resize)
    net = net.to(options.device).eval()
    tap_list, channels = map_channels(net, options.taps)
    matrix = _score_maps(db, net, tap_list, channels, measure, options, name)
    return MapScores(
        matrix,
        [t.name for t, c in zip(tap_list, channels, strict=True) for _ in range(c)],
        [ch for c in channels for ch in range(c)],
        measure,
        name,
        _weights_text(net, options.weights),
        options.resize,
        db.name,
        net.resize,
        weights_checksum=state_dict_checksum(net.model),
        signature=backbone_signature(net, resize=options.resize),
    )


def _score_maps(
    db: IQADatabase,
    net: Backbone,
    tap_list: list,
    channels: list[int],
    measure: str,
    options: FeatureOptions,
    name: str,
) -> np.ndarray:
    """The ``(pairs, sum(channels))`` matrix: each chunk's reference once, its distorted images in one pass."""
    from percept.eval.sweep.budget import check_sweep_memory
    from percept.eval.sweep.chunks import chunk_progress, image_side, iterate_chunks, make_chunks
    from percept.eval.sweep.measures import mse_per_map, ssim_per_map, unit_sq_per_map
    from percept.eval.sweep.taps import TapScorer

    device = torch.device(options.device)
    fn = {"ssim": ssim_per_map, "mse": mse_per_map, "unit-l2": unit_sq_per_map}[measure]
    scorer = TapScorer(net, tap_list, {measure: fn})
    matrix = np.zeros((len(db), sum(channels)), dtype=np.float32)
    offsets = np.cumsum([0, *channels])
    chunks = make_chunks(db, options.batch_size)
    current = None
    if options.resize is not None:  # refused before any image is decoded at a size that cannot fit
        check_sweep_memory(net, tap_list, (1, 3, *image_side(options.resize)), options.batch_size, device, name)
    batches = iterate_chunks(db, chunks, resize=options.resize, workers=options.workers)
    for _, ref_id, ref, dists, rows in chunk_progress(batches, len(chunks), f"{name} maps", options.progress):
        if ref_id != current:
            scorer.set_reference(ref.to(device))
            current = ref_id
        out = scorer.score(dists.to(device))
        for i, tap in enumerate(tap_list):
            matrix[rows.numpy(), offsets[i] : offsets[i + 1]] = out[(tap.name, measure)].float().numpy()
    return matrix


def _weights_text(net: Any, weights: Any) -> str | None:
    """The weights as a file records them: ``"random:SEED"`` for random ones, a tag or path as given."""
    from percept.backbones.factory import reproducible_weights

    recorded = reproducible_weights(net, weights)
    return None if recorded is None else str(recorded)
