"""Layer sweep: how well every tap of one or more networks, read out and compared in several ways, agrees with people.

For each backbone, every stage output (and the input image itself, depth 0) is a tap. Each reference
image runs through the network once and its tap outputs are kept while its distorted versions are
scored; each batch of distorted images runs through the network once, and a forward hook on every
stage compares that stage's output with the reference's the moment it is computed, so no tap output
of the distorted batch outlives its stage. Per (tap, measure) the distances land in a tidy table, and
per (tap, measure) the agreement with the scores (:func:`percept.eval.stats.correlations`).

Measures (``--measures``), each a distance (0 for identical features):

============  ======================================================================================
``flat-l2``   Euclidean norm of the whole flattened difference, ``||a - b||_2`` over C, H, W (the
              protocol of the deep-IQA dissection studies: no normalisation)
``mse``       mean over C, H, W of ``(a - b)^2``
``unit-l2``   channel unit-normalisation, squared difference summed over C, mean over space (LPIPS
              without its learned heads)
``cosine``    ``1 - cos`` between channel vectors, mean over space
``ssim``      ``1 -`` mean over channels of SSIM between feature maps (Gaussian window 11, sigma 1.5,
              shrunk to the map on small maps; C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 1 as MATLAB's
              ``ssim`` on doubles)
``meanstd``   Euclidean distance between the (spatial mean, spatial std) descriptors of the channels
``gram``      Frobenius norm of the difference of Gram matrices ``F F^T / (H W)``
R/D           any registered readout/distance pair, e.g. ``unit/l2`` or ``raw/cosine``
============  ======================================================================================

With ``flat-l2`` the sweep also reports the concatenation of the canonical taps: ``cat:<tap>`` is the
flattened concatenation of every canonical tap up to ``<tap>`` (``sqrt`` of the sum of squared
``flat-l2``), the cumulative readout of those studies.

Outputs in ``out_dir``: ``pairs.csv`` (the database's table), ``scores.csv`` (tidy: ``database,
backbone, tap, module, depth, canonical, measure, pair, distance``), ``correlations.csv`` (one row per
backbone, tap and measure: ``n, srocc, krocc, plcc, rmse, plcc_logistic, rmse_logistic``), and
``partial/``, the per-chunk results a rerun resumes from.

Example:
    >>> from percept.eval.datasets import load_database
    >>> from percept.eval.sweep import run_sweep
    >>> db = load_database("tid2013", "/data/tid2013")  # doctest: +SKIP
    >>> result = run_sweep(db, ["vgg16", "alexnet"], out_dir="sweep-tid2013")  # doctest: +SKIP
    >>> result.correlations.sort_values("srocc").tail(1)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from percept.distances.ssim import ssim_per_map
from percept.errors import InputError, SpecError, TapError, first_line, unknown_name
from percept.eval.datasets import IQADatabase
from percept.io import save_csv

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from percept.backbones.base import Backbone

INPUT_TAP = "input"
DEFAULT_MEASURES = ("flat-l2",)
BASELINES = ("psnr", "ssim", "ms-ssim")
SIMILARITY_BASELINES = {"psnr", "ssim", "ms-ssim"}

# -- measures on features ------------------------------------------------------------------------------


def mse_per_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of each feature map: ``(1 or N, C, H, W), (N, C, H, W) -> (N, C)``.

    Example:
        >>> mse_per_map(torch.ones(1, 2, 3, 3), torch.zeros(2, 2, 3, 3)).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    return (a.float() - b.float()).pow(2).mean(dim=(2, 3))


def unit_sq_per_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared difference of unit-normalised channels, averaged over space, per map: ``(N, C)``.

    Summed over channels with weights this is LPIPS' per-tap distance, so it is the per-channel error
    that channel-weight fine-tuning fits.

    Example:
        >>> unit_sq_per_map(torch.ones(1, 2, 3, 3), torch.ones(2, 2, 3, 3)).tolist()
        [[0.0, 0.0], [0.0, 0.0]]
    """
    from percept.ops.reference import unit_normalize

    return (unit_normalize(b.float()) - unit_normalize(a.float())).pow(2).mean(dim=(2, 3))


def _fused(a: torch.Tensor, b: torch.Tensor, **options) -> torch.Tensor:
    """``feature_distance`` of the reference ``a`` (1 or N, ...) against the batch ``b``: per-pixel channel
    sums, spatial mean, no temporary as large as the features (compiled on CPU for large maps)."""
    from percept.ops import feature_distance

    return feature_distance(b, a.expand_as(b), **options)


def _flat_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Runs at every stage of every batch: the fused op reads both maps once and accumulates in
    # float32 blocks (more exact than one long sum, and 2-3x faster than a difference tensor).
    pixels = b[0, 0].numel()
    return (_fused(a, b, kind="sq") * pixels).sqrt()


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _fused(a, b, kind="sq") / b.shape[1]


def _unit_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _fused(a, b, kind="sq", normalize=True)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _fused(a, b, kind="cos")


def _ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1 - ssim_per_map(a, b).mean(1)


def _meanstd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # The meanstd readout's statistics (population std, sqrt(var + 1e-8)): sqrt of raw ``meanstd/l2``.
    from percept.readouts.descriptors import channel_mean_std

    def describe(x: torch.Tensor) -> torch.Tensor:
        return torch.cat(channel_mean_std(x.float()), 1)

    return (describe(a) - describe(b)).pow(2).sum(1).sqrt()


def _gram(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # The gram readout's matrices: sqrt of ``gram/l2``.
    from percept.readouts.descriptors import gram_matrix

    return (gram_matrix(a.float()) - gram_matrix(b.float())).pow(2).sum(1).sqrt()


MEASURES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "flat-l2": _flat_l2,
    "mse": _mse,
    "unit-l2": _unit_l2,
    "cosine": _cosine,
    "ssim": _ssim,
    "meanstd": _meanstd,
    "gram": _gram,
}


def make_measure(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The measure ``name``: ``f(a (1 or N, C, H, W), b (N, C, H, W)) -> (N,)`` distances.

    ``name`` is one of :data:`MEASURES` or ``readout/distance`` of registered ones (``unit/l2``).

    Example:
        >>> f = make_measure("flat-l2")
        >>> f(torch.zeros(1, 1, 2, 2), torch.ones(3, 1, 2, 2)).tolist()
        [2.0, 2.0, 2.0]
    """
    if name in MEASURES:
        return MEASURES[name]
    if "/" not in name:
        raise SpecError(unknown_name("measure", name, [*MEASURES, "<readout>/<distance>"]))
    from percept.distances.base import FusedDistance
    from percept.registry import get_registry

    readout_name, _, distance_name = name.partition("/")
    registry = get_registry()
    readout_factory = registry.get("readout", readout_name).factory
    distance = registry.get("distance", distance_name).factory()
    readouts: dict[int, object] = {}

    def measure(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        channels = b.shape[1]
        if channels not in readouts:
            readouts[channels] = readout_factory(channels=channels).to(b.device)
        readout = readouts[channels]
        a = a.expand(b.shape[0], *a.shape[1:]).contiguous()
        if isinstance(distance, FusedDistance) and readout.fusable:
            return distance(a, b, weight=readout.channel_weight(), normalize=readout.normalize)
        return distance(readout(a), readout(b))

    return measure


# -- taps --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepTap:
    """One tap of a sweep: its display name, module path (``""`` for the input), depth and canonicity."""

    name: str
    module: str
    depth: int
    canonical: bool


def sweep_taps(backbone: Backbone, taps: Sequence[str] | None = None) -> list[SweepTap]:
    """The taps a sweep visits: the input (depth 0) and every stage output, or the ``taps`` named.

    Each stage is named by its finer tap name where the backbone has one (``relu3_3``), else its
    canonical name (ResNet's ``layer2`` for the last block of that layer), else its module path;
    ``canonical`` marks the stages behind the backbone's canonical taps. ``depth`` is the stage's
    position (1 for the first stage), whatever name it was asked by. A name given twice, or two names
    of one stage, are one tap.

    Example:
        >>> [t.name for t in sweep_taps(create_backbone("alexnet", weights=None))][:4]  # doctest: +SKIP
        ['input', 'features.0', 'relu1', 'pool1']
    """
    by_index: dict[int, list] = {}
    for info in backbone.feature_info:
        by_index.setdefault(info.index, []).append(info)
    paths = backbone.module_paths
    chosen = [INPUT_TAP, *paths] if taps is None or list(taps) == ["all"] else list(taps)
    out: list[SweepTap] = []
    seen: set[tuple[str, int]] = set()
    for name in chosen:
        if name == INPUT_TAP:
            tap = SweepTap(INPUT_TAP, "", 0, False)
        else:
            info = backbone.tap_info(name)
            infos = by_index.get(info.index, [])
            fine = [i.name for i in infos if not i.canonical]
            named = fine or [i.name for i in infos]
            display = name if name != paths[info.index] else (named[0] if named else name)
            tap = SweepTap(display, paths[info.index], info.index + 1, any(i.canonical for i in infos))
        if (tap.name, tap.depth) not in seen:
            seen.add((tap.name, tap.depth))
            out.append(tap)
    return out


class TapScorer:
    """Compares every tap of a backbone between one reference image and batches of distorted ones.

    Args:
        backbone: the network (frozen, eval mode).
        taps: from :func:`sweep_taps`.
        measures: ``{name: f(a, b) -> (N,)}`` or per-map ``(N, C)`` functions.

    :meth:`set_reference` runs the reference once and keeps its tap maps; :meth:`score` runs a distorted
    batch once through :meth:`~percept.backbones.base.Backbone.iter_taps`, comparing each tap's map with
    the reference's as its stage finishes, so no map of the batch outlives its comparison.

    Example:
        >>> scorer = TapScorer(bb, sweep_taps(bb), {"flat-l2": make_measure("flat-l2")})  # doctest: +SKIP
        >>> scorer.set_reference(ref)  # (1, 3, H, W)  # doctest: +SKIP
        >>> scorer.score(dist)[("relu1_1", "flat-l2")].shape  # (N,)  # doctest: +SKIP
    """

    def __init__(self, backbone: Backbone, taps: Sequence[SweepTap], measures: dict[str, Callable]) -> None:
        self.backbone = backbone
        self.taps = list(taps)
        self.measures = measures
        # Stage taps by module path (what the backbone is asked for); several names may share one stage.
        self._module_taps: dict[str, list[SweepTap]] = {}
        for tap in self.taps:
            if tap.module:
                self._module_taps.setdefault(tap.module, []).append(tap)
        self._reference: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def set_reference(self, ref: torch.Tensor) -> None:
        """Run the reference ``(1, C, H, W)`` in [0, 1] and keep every tap's map."""
        self._reference = {INPUT_TAP: ref}
        if self._module_taps:
            self._reference.update(self.backbone.iter_taps(ref, list(self._module_taps)))

    @torch.no_grad()
    def score(self, dist: torch.Tensor) -> dict[tuple[str, str], torch.Tensor]:
        """Distances of a batch ``(N, C, H, W)`` to the reference, ``{(tap name, measure): (N,) or (N, C)}``.

        Raises:
            TapError: a tap yielded no map (names the backbone and the tap), so a sweep never has fewer
                rows than pairs x taps x measures without saying why.
        """
        if self._reference is None:
            raise RuntimeError("call set_reference before score")
        ref = self._reference
        if ref[INPUT_TAP].shape[1:] != dist.shape[1:]:
            raise InputError(
                f"distorted images of shape {tuple(dist.shape[1:])} do not match their reference's "
                f"{tuple(ref[INPUT_TAP].shape[1:])}; pass resize= to compare images of different sizes"
            )
        out: dict[tuple[str, str], torch.Tensor] = {}

        def compare(key: str, taps: list[SweepTap], features: torch.Tensor) -> None:
            for tap in taps:
                for name, fn in self.measures.items():
                    out[(tap.name, name)] = fn(ref[key], features).detach().cpu()

        inputs = [t for t in self.taps if t.name == INPUT_TAP]
        if inputs:
            compare(INPUT_TAP, inputs, dist)
        if self._module_taps:
            for module, features in self.backbone.iter_taps(dist, list(self._module_taps)):
                compare(module, self._module_taps[module], features)
        missing = [t.name for t in self.taps if any((t.name, m) not in out for m in self.measures)]
        if missing:
            raise TapError(f"backbone {self.backbone.name!r} gave no value for tap(s) {missing}")
        return out


def build_backbone(backbone: str | Backbone, *, weights="imagenet", network_resize: bool = False) -> Backbone:
    """The backbone a toolkit function runs: a name built with ``weights``, or a built one as it is.

    Args:
        backbone: a registered name (``"resnet50"``, ``"timm.vit_small_patch16_224.dino"``) or a
            :class:`~percept.backbones.base.Backbone`.
        weights: as :func:`~percept.create_backbone` (``None``: random, with a warning).
        network_resize: a network that runs at one input size only (MaxViT, LeViT, BEiT) is built
            with ``resize=True``: every image is resized to that size on the way in (its
            interpolation, antialiased). Other networks are built as usual.

    Example:
        >>> build_backbone("maxvit_t", weights=None, network_resize=True).resize  # doctest: +SKIP
        True
    """
    from percept.backbones.factory import create_backbone

    if not isinstance(backbone, str):
        return backbone
    net = create_backbone(backbone, weights=weights)
    if network_resize and net.fixed_size and not net.resize:
        net = create_backbone(backbone, weights=weights, resize=True)
    return net


# -- data --------------------------------------------------------------------------------------------


def _resize(image: torch.Tensor, size: int | tuple[int, int] | None) -> torch.Tensor:
    if size is None:
        return image
    return F.interpolate(image[None], size=image_side(size), mode="bilinear", antialias=True, align_corners=False)[
        0
    ].clamp(0, 1)


def _rgb(image: torch.Tensor) -> torch.Tensor:
    return image.expand(3, -1, -1) if image.shape[0] == 1 else image


class ChunkDataset(torch.utils.data.Dataset):
    """Chunks of one reference's distorted images: ``(ref (3, H, W), dists (B, 3, H, W), rows (B,))``.

    Args:
        db: the database.
        chunks: ``[(ref_id, [row indices])]`` from :func:`make_chunks`.
        resize: ``None`` (native resolution), a side, or ``(height, width)``.
    """

    def __init__(self, db: IQADatabase, chunks: list[tuple[str, list[int]]], resize=None) -> None:
        self.table = db.table[["ref", "dist"]].reset_index(drop=True)
        self.chunks = chunks
        self.resize = resize

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int):
        from percept.images import load_image

        _, rows = self.chunks[i]
        ref = _rgb(_resize(load_image(self.table.at[rows[0], "ref"]), self.resize))
        dists = []
        for row in rows:
            image = _rgb(_resize(load_image(self.table.at[row, "dist"]), self.resize))
            if image.shape != ref.shape:
                raise InputError(
                    f"'{self.table.at[row, 'dist']}' is {tuple(image.shape[1:])} pixels but its reference "
                    f"'{self.table.at[row, 'ref']}' is {tuple(ref.shape[1:])}; pass resize= (CLI: --resize)"
                )
            dists.append(image)
        return ref, torch.stack(dists), torch.tensor(rows)


def make_chunks(db: IQADatabase, batch_size: int) -> list[tuple[str, list[int]]]:
    """Split each reference's rows into chunks of at most ``batch_size`` (order: references as they appear).

    Example:
        >>> make_chunks(db, 2)[:2]  # doctest: +SKIP
        [('I01', [0, 1]), ('I01', [2, 3])]
    """
    from percept.eval.datasets import iter_reference_groups

    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    chunks = []
    for ref_id, rows in iter_reference_groups(db):
        chunks.extend((ref_id, rows[i : i + batch_size]) for i in range(0, len(rows), batch_size))
    return chunks


def iterate_chunks(
    db: IQADatabase, chunks: list[tuple[str, list[int]]], *, resize=None, workers: int = 0, skip: set[int] = frozenset()
) -> Iterator[tuple[int, str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(chunk index, ref_id, ref (1, 3, H, W), dists (B, 3, H, W), rows (B,))`` through a DataLoader.

    Chunks in ``skip`` (already done) are not loaded.
    """
    todo = [i for i in range(len(chunks)) if i not in skip]
    dataset = torch.utils.data.Subset(ChunkDataset(db, chunks, resize), todo)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers, shuffle=False)
    for i, (ref, dists, rows) in zip(todo, loader, strict=True):
        yield i, chunks[i][0], ref[None], dists, rows


Shard = tuple[int, int]


def shard_chunks(chunks: list[tuple[str, list[int]]], rank: int, world: int) -> set[int]:
    """The chunk indices that shard ``rank`` of ``world`` computes: whole references, balanced by image count.

    References (with all their chunks) go, largest first, to the shard holding the fewest images so
    far, so each reference image runs through the network on one shard only. Deterministic: every
    process computes the same split from the same chunks.

    Args:
        chunks: from :func:`make_chunks`.
        rank: this shard, ``0 <= rank < world``.
        world: number of shards.

    Example:
        >>> chunks = [("a", [0, 1]), ("a", [2]), ("b", [3]), ("c", [4, 5])]
        >>> sorted(shard_chunks(chunks, 0, 2)), sorted(shard_chunks(chunks, 1, 2))
        ([0, 1], [2, 3])
    """
    rank, world = _check_shard((rank, world))
    groups: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}
    for i, (ref_id, rows) in enumerate(chunks):
        groups.setdefault(ref_id, []).append(i)
        sizes[ref_id] = sizes.get(ref_id, 0) + len(rows)
    load = [0] * world
    mine: set[int] = set()
    for ref_id in sorted(groups, key=lambda r: -sizes[r]):  # stable: ties keep database order
        target = min(range(world), key=lambda k: (load[k], k))
        load[target] += sizes[ref_id]
        if target == rank:
            mine.update(groups[ref_id])
    return mine


def _distributed() -> Shard | None:
    """``(rank, world)`` when torch.distributed is initialised with more than one process, else ``None``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def _check_shard(shard) -> Shard:
    try:
        rank, world = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise InputError(f"shard must be (rank, world), e.g. (0, 4), got {shard!r}") from None
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"shard must be (rank, world) with 0 <= rank < world, got ({rank}, {world})")
    return rank, world


def _my_chunks(chunks: list[tuple[str, list[int]]], shard) -> tuple[set[int], bool]:
    """The chunks this process computes and whether rows are then gathered from every rank: ``shard``
    given, its share; else under torch.distributed the rank's share (gathered); else all of them."""
    if shard is not None:
        return shard_chunks(chunks, *_check_shard(shard)), False
    ranks = _distributed()
    if ranks is None:
        return set(range(len(chunks))), False
    return shard_chunks(chunks, *ranks), True


def _gather(obj):
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    import torch.distributed as dist

    objects: list = [None] * dist.get_world_size()
    dist.all_gather_object(objects, obj)
    return objects


# -- the sweep ---------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """What :func:`run_sweep` produced.

    Attributes:
        scores: tidy distances, one row per (backbone, tap, measure, pair).
        correlations: one row per (backbone, tap, measure) with the agreement statistics.
        out_dir: where the CSV files (and plots) are.
    """

    scores: pd.DataFrame
    correlations: pd.DataFrame
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="chunk")


def _chunk_file(db: IQADatabase, chunks: list[tuple[str, list[int]]], index: int) -> str:
    """``c<index>-<images>.csv``: ``<images>`` hashes the chunk's image files (path, size, modification time),
    so a chunk computed from images that have changed since is not taken for this one."""
    table = db.table
    _, rows = chunks[index]
    parts = []
    for path in [table["ref"].iloc[rows[0]], *table["dist"].iloc[rows]]:
        parts.append(file_signature(path))
    return f"c{index:06d}-{hashlib.sha1(chr(10).join(parts).encode()).hexdigest()[:10]}.csv"


def _valid_chunks(
    partial: Path,
    chunks: list[tuple[str, list[int]]],
    mine: set[int],
    db: IQADatabase,
    taps: Sequence[SweepTap],
    measures: Sequence[str],
) -> set[int]:
    """The chunks of ``mine`` whose file in ``partial`` is whole and current: computed from the images as they
    are now, every (tap, measure) for every pair of the chunk, finite distances. Any other file (stale,
    truncated, empty, garbage, a stray name) is named in a warning and its chunk computed again."""
    import numpy as np
    import pandas as pd

    expected = {(t.name, m) for t in taps for m in measures}
    valid: set[int] = set()
    for path in sorted(partial.iterdir()):
        if path.name.startswith("."):
            continue  # a temporary file of a write in progress elsewhere
        stem, _, _ = path.name.partition("-")
        index = int(stem[1:]) if stem[:1] == "c" and stem[1:].isdigit() and path.suffix == ".csv" else None
        if index is None or index >= len(chunks):
            warnings.warn(f"'{path}' is not a chunk of this sweep; left alone", stacklevel=3)
            continue
        if index not in mine:
            continue
        if path.name != _chunk_file(db, chunks, index):
            warnings.warn(
                f"'{path}' was computed from images that have changed since; computing it again", stacklevel=3
            )
            path.unlink(missing_ok=True)
            continue
        problem = None
        try:
            frame = pd.read_csv(path)
            rows = set(chunks[index][1])
            if list(frame.columns) != ["tap", "measure", "pair", "distance"]:
                problem = f"columns {list(frame.columns)}"
            elif len(frame) != len(rows) * len(expected):
                problem = f"{len(frame)} rows, expected {len(rows) * len(expected)}"
            elif set(zip(frame["tap"].astype(str), frame["measure"].astype(str), strict=True)) != expected:
                problem = "other taps or measures"
            elif set(frame["pair"].astype(int)) != rows:
                problem = "other pairs"
            elif not np.isfinite(frame["distance"].to_numpy(dtype=float)).all():
                problem = "distances that are not finite numbers"
        except (ValueError, TypeError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            problem = f"unreadable ({first_line(exc, with_type=True)})"
        if problem is None:
            valid.add(index)
        else:
            warnings.warn(f"'{path}' is not a whole chunk of this sweep ({problem}); computing it again", stacklevel=3)
    return valid


def file_signature(path: str | os.PathLike) -> str:
    """``path:size:modification time`` of a file (``path:missing`` if it cannot be read): what results computed
    from it are keyed by, so a file changed under the same name is not taken for the old one.

    Example:
        >>> file_signature("/nonexistent.png")
        '/nonexistent.png:missing'
    """
    try:
        stat = os.stat(path)
    except OSError:
        return f"{os.fspath(path)}:missing"
    return f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}"


def weights_key(weights):
    """``weights`` as a cache key: a file by :func:`file_signature` (its content may change), a tag as it is."""
    return file_signature(weights) if isinstance(weights, str | os.PathLike) and os.path.isfile(weights) else weights


def image_side(resize) -> tuple[int, int]:
    """``(height, width)`` of a ``resize`` given as a side or a pair."""
    return (resize, resize) if isinstance(resize, int) else (int(resize[0]), int(resize[1]))


def _config_key(db: IQADatabase, backbone: str, weights, taps, measures, resize, batch_size, network_resize) -> str:
    weights = weights_key(weights)
    text = json.dumps(
        [
            db.name,
            len(db),
            db.table["dist"].iloc[0],
            db.table["dist"].iloc[-1],
            backbone,
            str(weights),
            [t.name for t in taps],
            list(measures),
            resize,
            batch_size,
            *(["network_resize"] if network_resize else []),
        ],
        default=str,
    )
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def sweep_backbone(
    db: IQADatabase,
    backbone: str | Backbone,
    *,
    taps: Sequence[str] | None = None,
    measures: Sequence[str] = DEFAULT_MEASURES,
    weights="imagenet",
    resize=None,
    batch_size: int = 8,
    workers: int = 0,
    device: str | torch.device = "cpu",
    partial_dir: str | os.PathLike | None = None,
    progress: bool = False,
    shard: Shard | None = None,
    network_resize: bool = False,
) -> pd.DataFrame:
    """Distances at every tap of one backbone for every pair of ``db``: a tidy DataFrame.

    Args:
        db: the database.
        backbone: a registered name or a built :class:`~percept.backbones.base.Backbone`.
        taps: tap names or module paths; ``None`` for the input and every stage.
        measures: names (see the module docstring).
        weights: backbone weights when ``backbone`` is a name (``None``: random, with a warning).
        resize: ``None`` (native resolution), a side, or ``(height, width)``.
        batch_size: distorted images per forward pass.
        workers: DataLoader worker processes decoding images.
        device: where the network runs.
        partial_dir: folder for per-chunk results; chunks already there are not recomputed.
        progress: show a tqdm progress bar.
        shard: ``(rank, world)``: compute only this shard's references (:func:`shard_chunks`) and
            return only their rows; with ``partial_dir`` shared by the shards, a later call without
            ``shard`` finds every chunk done and merges them (one job per shard on a cluster). When
            ``None`` and ``torch.distributed`` is initialised with several processes, each rank
            computes its shard and the rows are gathered: every rank returns the whole table, in the
            order one process would give.
        network_resize: see :func:`build_backbone` (a fixed-size network resizes every image to its size).

    Returns:
        Columns ``backbone, tap, module, depth, canonical, measure, pair, distance``.

    Example:
        >>> sweep_backbone(db, "alexnet", weights=None, measures=["flat-l2", "ssim"]).head()  # doctest: +SKIP
    """
    import pandas as pd

    name = backbone if isinstance(backbone, str) else backbone.name
    net = build_backbone(backbone, weights=weights, network_resize=network_resize).to(device).eval()
    tap_list = sweep_taps(net, taps)
    fns = {m: make_measure(m) for m in measures}
    scorer = TapScorer(net, tap_list, fns)
    min_size = net.min_size([t.module for t in tap_list if t.module]) if any(t.module for t in tap_list) else 1
    chunks = make_chunks(db, batch_size)
    mine, gather = _my_chunks(chunks, shard)
    partial = None
    done: set[int] = set()
    if partial_dir is not None:
        key = _config_key(db, name, weights, tap_list, measures, resize, batch_size, net.resize)
        partial = Path(partial_dir) / f"{name}-{key}"
        partial.mkdir(parents=True, exist_ok=True)
        done = _valid_chunks(partial, chunks, mine, db, tap_list, measures)
    frames: dict[int, pd.DataFrame] = {}
    current_ref, checked = None, None
    if resize is not None:  # known before any image is decoded at that size
        checked = (1, 3, *image_side(resize))
        _check_sweep_memory(net, tap_list, checked, batch_size, torch.device(device), name)
    skip = done | (set(range(len(chunks))) - mine)
    iterator = iterate_chunks(db, chunks, resize=resize, workers=workers, skip=skip)
    for index, ref_id, ref, dists, rows in _progress(iterator, len(chunks) - len(skip), name, progress):
        if min(ref.shape[-2:]) < min_size:
            raise InputError(
                f"images of {ref.shape[-2]}x{ref.shape[-1]} pixels are smaller than the {min_size}x{min_size} that "
                f"the taps of {name} need; resize them up (resize=) or ask for shallower taps"
            )
        if checked != tuple(ref.shape):
            _check_sweep_memory(net, tap_list, tuple(ref.shape), batch_size, torch.device(device), name)
            checked = tuple(ref.shape)
        if ref_id != current_ref:
            scorer.set_reference(ref.to(device))
            current_ref = ref_id
        results = scorer.score(dists.to(device))
        records = {"tap": [], "measure": [], "pair": [], "distance": []}
        for (tap, measure), values in results.items():
            records["tap"] += [tap] * len(rows)
            records["measure"] += [measure] * len(rows)
            records["pair"] += rows.tolist()
            records["distance"] += values.double().tolist()
        frame = pd.DataFrame(records)
        if partial is not None:
            save_csv(frame, partial / _chunk_file(db, chunks, index), index=False)
        frames[index] = frame
    if partial is not None:
        for index in done:
            frames[index] = pd.read_csv(partial / _chunk_file(db, chunks, index))
    if gather:
        everyone: dict[int, pd.DataFrame] = {}
        for part in _gather(frames):
            everyone.update(part)
        frames = everyone
    empty = pd.DataFrame({"tap": [], "measure": [], "pair": pd.Series([], dtype=int), "distance": []})
    scores = pd.concat([frames[i] for i in sorted(frames)] or [empty], ignore_index=True)
    info = pd.DataFrame(
        {
            "tap": [t.name for t in tap_list],
            "module": [t.module for t in tap_list],
            "depth": [t.depth for t in tap_list],
            "canonical": [t.canonical for t in tap_list],
        }
    )
    scores = scores.merge(info, on="tap", how="left")
    scores.insert(0, "backbone", name)
    if "flat-l2" in measures and len(scores):
        scores = pd.concat([scores, _cumulative(scores)], ignore_index=True)
    return scores[["backbone", "tap", "module", "depth", "canonical", "measure", "pair", "distance"]]


def _check_sweep_memory(
    net: Backbone, taps: Sequence[SweepTap], shape: tuple[int, ...], batch: int, device: torch.device, name: str
) -> None:
    """Refuse image sizes whose pass cannot fit in memory: a batch's pass plus the reference's kept taps."""
    from percept.memory import _size, available_bytes, estimate_pass_bytes

    stages = [t.depth - 1 for t in taps if t.module]
    if not stages:
        return
    size = net.input_size if net.resize else shape[-2:]
    shapes = net._trace_shapes()
    last = max(stages)
    need = (batch + 1) * 3 * shape[-2] * shape[-1] * 4  # the decoded images
    need += estimate_pass_bytes(shapes, last, (batch, 3, *size), 4, graph=False)
    need += sum(estimate_pass_bytes([shapes[i]], 0, (1, 3, *size), 4, graph=True) for i in stages)
    free = available_bytes(device)
    if free is not None and need > free:
        raise InputError(
            f"images of {shape[-2]}x{shape[-1]} pixels need at least {_size(need)} to sweep {name} in batches of "
            f"{batch}, but {_size(free)} is free: resize them down (resize=, CLI --resize) or lower the batch size"
        )


def _cumulative(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows ``cat:<tap>``: flat L2 over the concatenation of every canonical tap up to ``<tap>``."""
    import pandas as pd

    flat = scores[(scores["measure"] == "flat-l2") & scores["canonical"]]
    if flat.empty:
        return flat
    wide = flat.pivot_table(index="pair", columns="depth", values="distance", aggfunc="first").sort_index(axis=1)
    cumulative = (wide**2).cumsum(axis=1) ** 0.5
    names = flat.drop_duplicates("depth").set_index("depth")
    frames = []
    for depth in cumulative.columns:
        row = names.loc[depth]
        frames.append(
            pd.DataFrame(
                {
                    "backbone": row["backbone"],
                    "tap": f"cat:{row['tap']}",
                    "module": row["module"],
                    "depth": depth,
                    "canonical": True,
                    "measure": "flat-l2",
                    "pair": cumulative.index,
                    "distance": cumulative[depth].values,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def baseline_scores(
    db: IQADatabase, names: Sequence[str] = BASELINES, *, resize=None, weights="imagenet", device="cpu", shard=None
) -> pd.DataFrame:
    """Classic and published metrics on every pair, as reference lines for the sweep's plots.

    ``psnr``, ``ssim`` and ``ms-ssim`` are piq's (data range 1); any other name is a percept spec or
    preset (``lpips-vgg``, ``dists`` where registered), built with ``weights``. A metric that cannot be
    computed (piq missing, images too small for MS-SSIM, weights missing) is left out with a warning.

    ``shard``: as in :func:`sweep_backbone` (under ``torch.distributed`` each rank scores its
    references and every rank gets all rows).

    Returns:
        Tidy rows with ``backbone = "baseline"``, ``tap = measure = <name>``, ``depth = NaN``.

    Example:
        >>> baseline_scores(db, ["psnr", "ssim"]).groupby("measure").size()  # doctest: +SKIP
    """
    import pandas as pd

    from percept.errors import PerceptError

    fns: dict[str, Callable] = {}
    for name in names:
        if name in ("psnr", "ssim", "ms-ssim"):
            try:
                import piq
            except ImportError:
                warnings.warn(f"baseline {name!r} needs piq (`pip install piq`); left out", stacklevel=2)
                continue
            fn = {"psnr": piq.psnr, "ssim": piq.ssim, "ms-ssim": piq.multi_scale_ssim}[name]
            fns[name] = lambda x, y, fn=fn: fn(x, y, data_range=1.0, reduction="none")
        else:
            from percept.pipeline import build_pipeline

            try:
                fns[name] = build_pipeline(name, weights=weights).to(device)
            except PerceptError as exc:
                warnings.warn(f"baseline {name!r} left out: {exc}", stacklevel=2)
    records = []
    chunks = make_chunks(db, 16)
    mine, gather = _my_chunks(chunks, shard)
    skip = set(range(len(chunks))) - mine
    for index, _, ref, dists, rows in iterate_chunks(db, chunks, resize=resize, skip=skip):
        ref, dists = ref.to(device), dists.to(device)
        for name, fn in list(fns.items()):
            try:
                with torch.no_grad():
                    values = fn(ref.expand_as(dists).contiguous(), dists).reshape(-1).double().cpu()
            except (ValueError, AssertionError, RuntimeError, PerceptError) as exc:
                warnings.warn(f"baseline {name!r} left out: {exc}", stacklevel=2)
                del fns[name]
                records = [r for r in records if r[1] != name]
                continue
            pairs = zip(rows.tolist(), values.tolist(), strict=True)
            records += [(index, name, int(p), float(v)) for p, v in pairs]
    if gather:
        # A baseline that failed on any rank is left out on every rank; rows in one process's order.
        parts = _gather((records, set(fns)))
        kept = set.intersection(*(done for _, done in parts))
        order = {name: k for k, name in enumerate(names)}
        records = sorted((r for part, _ in parts for r in part if r[1] in kept), key=lambda r: (r[0], order[r[1]]))
    frame = pd.DataFrame([r[1:] for r in records], columns=["measure", "pair", "distance"])
    frame.insert(0, "backbone", "baseline")
    frame.insert(1, "tap", frame["measure"])
    frame.insert(2, "module", "")
    frame.insert(3, "depth", math.nan)
    frame.insert(4, "canonical", False)
    return frame


def correlation_table(
    scores: pd.DataFrame, db: IQADatabase, *, bootstrap: int = 0, logistic: bool = True
) -> pd.DataFrame:
    """Agreement of each (backbone, tap, measure) with the database's scores.

    Args:
        scores: tidy distances (from :func:`sweep_backbone` / :func:`baseline_scores`).
        db: the database the ``pair`` column indexes.
        bootstrap: resamples of reference images for 95% intervals of SROCC (``srocc_low``,
            ``srocc_high``); 0 for none.
        logistic: fit the 5-parameter logistic (``plcc_logistic``, ``rmse_logistic``).

    Returns:
        One row per (backbone, tap, measure): ``module, depth, canonical, n, srocc, krocc, plcc, rmse,
        plcc_logistic, rmse_logistic, fit_failed`` (and the interval). Correlations are positive when
        the measure agrees with people (a distance against MOS is negated; PSNR/SSIM baselines are
        similarities).

    Example:
        >>> correlation_table(result.scores, db)[["tap", "srocc"]].head()  # doctest: +SKIP
    """
    import numpy as np
    import pandas as pd

    from percept.eval.stats import bootstrap_ci, correlations, srocc

    target = db.table["score"].to_numpy(dtype=float)
    groups = db.table["ref_id"].to_numpy()
    rows = []
    keys = ["backbone", "tap", "measure"]
    for (backbone, tap, measure), group in scores.groupby(keys, sort=False):
        pairs = group["pair"].to_numpy(dtype=int)
        pred = group["distance"].to_numpy(dtype=float)
        similarity = backbone == "baseline" and measure in SIMILARITY_BASELINES
        stats = correlations(pred, target[pairs], higher_is_better=db.higher_is_better,
                             lower_is_better_metric=not similarity, logistic=logistic)  # fmt: skip
        first = group.iloc[0]
        row = {"database": db.name, "backbone": backbone, "tap": tap, "module": first["module"],
               "depth": first["depth"], "canonical": first["canonical"], "measure": measure, **stats}  # fmt: skip
        if bootstrap:
            sign = 1.0 if stats["srocc"] * srocc(pred, target[pairs]) >= 0 else -1.0
            _, low, high = bootstrap_ci(
                lambda ix, pred=pred, y=target[pairs], s=sign: s * srocc(pred[ix], y[ix]),
                groups[pairs],
                n_boot=bootstrap,
            )
            row["srocc_low"], row["srocc_high"] = low, high
        rows.append(row)
    table = pd.DataFrame(rows)
    table["n"] = table["n"].astype(int)
    table = table.replace({np.inf: np.nan})
    return describe_taps(table)


def describe_taps(table: pd.DataFrame) -> pd.DataFrame:
    """Add a study's columns to a table with ``backbone`` and ``depth``: ``depth`` as an integer stage index
    (empty for baselines), ``relative_depth`` (0 the input, 1 the deepest tap of that backbone in the table)
    and how each configuration was made (``architecture``, ``training``, ``data``; :mod:`percept.eval.configs`).

    Example:
        >>> import pandas as pd
        >>> describe_taps(pd.DataFrame({"backbone": ["vgg16", "vgg16"], "depth": [0, 4]}))["relative_depth"].tolist()
        [0.0, 1.0]
    """
    import pandas as pd

    from percept.eval.configs import describe

    table = table.copy()
    depth = pd.to_numeric(table["depth"], errors="coerce")
    deepest = depth.groupby(table["backbone"]).transform("max").clip(lower=1)
    table["depth"] = depth.astype("Int64")
    table.insert(table.columns.get_loc("depth") + 1, "relative_depth", depth / deepest)
    for column in ("architecture", "training", "data"):
        table[column] = ["" if b == "baseline" else getattr(describe(b), column) for b in table["backbone"]]
    return table


def run_sweep(
    db: IQADatabase,
    backbones: Sequence[str],
    *,
    out_dir: str | os.PathLike | None = None,
    taps: Sequence[str] | None = None,
    measures: Sequence[str] = DEFAULT_MEASURES,
    weights="imagenet",
    resize=None,
    batch_size: int = 8,
    workers: int = 0,
    device: str | torch.device = "cpu",
    baselines: Sequence[str] = BASELINES,
    bootstrap: int = 0,
    plots: bool = True,
    progress: bool = False,
    shard: Shard | None = None,
    network_resize: bool = False,
    group_by: str = "training",
) -> SweepResult:
    """Sweep every tap of each backbone over ``db``, correlate with the scores, write tables and plots.

    Args:
        db: the database.
        backbones: registered backbone names; ``@seed46`` stands for a named set of configurations
            (:mod:`percept.eval.configs`).
        out_dir: where ``pairs.csv``, ``scores.csv``, ``correlations.csv``, ``partial/`` and the plots go
            (``None``: nothing written, nothing resumed).
        taps, measures, weights, resize, batch_size, workers, device, network_resize: see
            :func:`sweep_backbone`.
        baselines: reference metrics (see :func:`baseline_scores`); ``()`` for none.
        bootstrap: resamples of references for SROCC intervals (0: none).
        plots: draw ``depth_<measure>.png`` (all backbones), ``depth_<backbone>.png`` and
            ``study_<measure>_by_<group_by>.png`` (every backbone a line, coloured by its group).
        progress: tqdm progress bars.
        shard: ``(rank, world)``: one job of several (a cluster array job): computes this shard's
            references into ``out_dir/partial`` and returns their rows, without baselines,
            correlations or plots; a final run without ``shard`` on the same ``out_dir`` merges
            the shards (no network pass is repeated) and adds the rest. Under ``torch.distributed``
            (several processes initialised) sharding and gathering are automatic and only rank 0
            writes files.
        network_resize: see :func:`sweep_backbone`.
        group_by: colour of the study figure's lines: ``"training"``, ``"data"`` or ``"architecture"``.

    Returns:
        A :class:`SweepResult` (a shard's: its scores and an empty correlation table).

    Example:
        >>> run_sweep(db, ["alexnet"], weights=None, out_dir="out", measures=["flat-l2"])  # doctest: +SKIP
        >>> run_sweep(db, ["alexnet"], out_dir="out", shard=(0, 4))  # job 0 of 4  # doctest: +SKIP
    """
    import pandas as pd

    from percept.eval.configs import GROUPINGS, expand_backbones

    if group_by not in GROUPINGS:
        raise InputError(f"group_by must be one of {', '.join(GROUPINGS)}, got {group_by!r}")
    backbones = expand_backbones([b for b in backbones if isinstance(b, str)]) + [
        b for b in backbones if not isinstance(b, str)
    ]
    out = None if out_dir is None else Path(out_dir)
    if shard is not None:
        shard = _check_shard(shard)
        if out is None:
            raise InputError("a shard's results go to out_dir/partial for the merge run: pass out_dir")
    distributed = _distributed()
    writer = out is not None and (distributed is None or distributed[0] == 0)
    files: list[Path] = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if writer and shard is None:
        save_csv(db.table.rename_axis("pair"), out / "pairs.csv")
        files.append(out / "pairs.csv")
    frames = []
    for backbone in backbones:
        frames.append(
            sweep_backbone(
                db,
                backbone,
                taps=taps,
                measures=measures,
                weights=weights,
                resize=resize,
                batch_size=batch_size,
                workers=workers,
                device=device,
                partial_dir=None if out is None else out / "partial",
                progress=progress,
                shard=shard,
                network_resize=network_resize,
            )
        )
    if shard is not None:
        scores = pd.concat(frames, ignore_index=True)
        scores.insert(0, "database", db.name)
        return SweepResult(scores, pd.DataFrame(), out, [])
    if baselines:
        frames.append(baseline_scores(db, baselines, resize=resize, weights=weights, device=device))
    scores = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    scores.insert(0, "database", db.name)
    scores["depth"] = pd.to_numeric(scores["depth"], errors="coerce").astype("Int64")
    table = correlation_table(scores.drop(columns="database"), db, bootstrap=bootstrap)
    if writer:
        save_csv(scores, out / "scores.csv", index=False)
        save_csv(table, out / "correlations.csv", index=False)
        files += [out / "scores.csv", out / "correlations.csv"]
        if plots:
            from percept.eval.plots import plot_study, plot_sweep

            files += plot_sweep(table, out)
            files += plot_study(table, out, group_by=group_by)
    return SweepResult(scores, table, out, files)


def evaluate_2afc(
    db,
    spec,
    *,
    weights="imagenet",
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> pd.DataFrame:
    """2AFC agreement of a metric on BAPPS-style triplets, per subset and over all of them.

    Args:
        db: a :class:`~percept.eval.datasets.TwoAFCDatabase` (:func:`~percept.eval.datasets.read_bapps`).
        spec: a spec string or preset (``"lpips-alex"``, ``"vgg16:all/unit/l2"``) or a built Pipeline.
        weights: backbone weights when ``spec`` is a string.
        batch_size: triplets per forward pass.
        device: where the network runs.
        progress: tqdm progress bar.

    Returns:
        DataFrame ``subset, n, agreement, human`` (``human``: the agreement of people with each other,
        ``mean(j^2 + (1 - j)^2)``, the ceiling), plus a row ``all``.

    Example:
        >>> evaluate_2afc(read_bapps("/data/bapps", subsets=("val/traditional",)), "lpips-alex")  # doctest: +SKIP
    """
    import numpy as np
    import pandas as pd

    from percept.eval.stats import two_afc_agreement
    from percept.images import load_image
    from percept.pipeline import Pipeline, build_pipeline

    pipe = spec if isinstance(spec, Pipeline) else build_pipeline(spec, weights=weights)
    pipe = pipe.to(device).eval()
    table = db.table.reset_index(drop=True)
    d0 = np.zeros(len(table))
    d1 = np.zeros(len(table))
    starts = range(0, len(table), batch_size)
    for start in _progress(starts, len(starts), "2afc", progress):
        rows = table.iloc[start : start + batch_size]
        images = {k: torch.stack([_rgb(load_image(p)) for p in rows[k]]).to(device) for k in ("ref", "p0", "p1")}
        with torch.no_grad():
            d0[start : start + len(rows)] = pipe(images["p0"], images["ref"]).double().cpu().numpy()
            d1[start : start + len(rows)] = pipe(images["p1"], images["ref"]).double().cpu().numpy()
    judge = table["judge"].to_numpy(dtype=float)
    out = []
    for subset, index in [*table.groupby("subset").indices.items(), ("all", np.arange(len(table)))]:
        j = judge[index]
        out.append({"subset": subset, "n": len(index), "agreement": two_afc_agreement(d0[index], d1[index], j),
                    "human": float(np.mean(j**2 + (1 - j) ** 2))})  # fmt: skip
    return pd.DataFrame(out)
