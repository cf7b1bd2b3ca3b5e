"""The sweep itself: every tap of each backbone over a database, resumable, sharded, written to a folder."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from percept.backbones.weights import state_dict_checksum
from percept.errors import InputError
from percept.eval.datasets import IQADatabase
from percept.eval.sweep.budget import check_sweep_memory
from percept.eval.sweep.chunks import (
    chunk_file_name,
    chunk_progress,
    image_side,
    iterate_chunks,
    make_chunks,
    valid_chunks,
    weights_key,
)
from percept.eval.sweep.measures import make_measure
from percept.eval.sweep.options import SweepOptions, merge_options
from percept.eval.sweep.shards import Shard, chunks_to_compute, distributed_shard, gather_objects
from percept.eval.sweep.tables import BASELINES, baseline_scores, correlation_table
from percept.eval.sweep.taps import SweepTap, TapScorer, build_backbone, sweep_taps
from percept.io import save_csv
from percept.signature import backbone_signature

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from percept.backbones.base import Backbone


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


def _config_key(
    db: IQADatabase, backbone: str, weights: str, taps: Sequence[SweepTap], options: SweepOptions, network_resize: bool
) -> str:
    """The partial-results folder's key. ``weights`` is the network's checksum (``state_dict_checksum``), not how
    the weights were asked for: random weights or a built backbone never share chunks with another network."""
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
            list(options.measures),
            options.resize,
            options.batch_size,
            *(["network_resize"] if network_resize else []),
        ],
        default=str,
    )
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def sweep_backbone(
    db: IQADatabase,
    backbone: str | Backbone,
    options: SweepOptions | None = None,
    *,
    partial_dir: str | os.PathLike | None = None,
    **overrides: Any,
) -> pd.DataFrame:
    """Distances at every tap of one backbone for every pair of ``db``: a tidy DataFrame.

    Args:
        db: the database.
        backbone: a registered name or a built :class:`~percept.backbones.base.Backbone`.
        options: a :class:`~percept.eval.sweep.SweepOptions`: taps (``None``: the input and every stage),
            measures (names, see the module docstring), weights (when ``backbone`` is a name; ``None``:
            random, with a warning), resize, batch_size, workers, device, progress, network_resize (see
            :func:`build_backbone`) and shard (below); default ``SweepOptions()``.
        partial_dir: folder for per-chunk results; chunks already there are not recomputed.
        **overrides: fields of :class:`~percept.eval.sweep.SweepOptions` (``batch_size=4``, ``measures=[...]``),
            applied over ``options``; an unknown name fails with the nearest ones.

    ``options.shard`` ``(rank, world)``: compute only this shard's references (:func:`shard_chunks`) and
    return only their rows; with ``partial_dir`` shared by the shards, a later call without ``shard`` finds
    every chunk done and merges them (one job per shard on a cluster). When ``None`` and
    ``torch.distributed`` is initialised with several processes, each rank computes its shard and the rows
    are gathered: every rank returns the whole table, in the order one process would give.

    Returns:
        Columns ``backbone, tap, module, depth, canonical, measure, pair, distance``.

    Example:
        >>> sweep_backbone(db, "alexnet", weights=None, measures=["flat-l2", "ssim"]).head()  # doctest: +SKIP
        >>> options = SweepOptions(weights=None, measures=["flat-l2", "ssim"])  # the same, as an object
        >>> sweep_backbone(db, "alexnet", options).head()  # doctest: +SKIP
    """
    import pandas as pd

    options = merge_options(SweepOptions, options, overrides)
    name = backbone if isinstance(backbone, str) else backbone.name
    device = torch.device(options.device)
    net = build_backbone(backbone, weights=options.weights, network_resize=options.network_resize).to(device).eval()
    tap_list = sweep_taps(net, options.taps)
    scorer = TapScorer(net, tap_list, {m: make_measure(m) for m in options.measures})
    chunks = make_chunks(db, options.batch_size)
    mine, gather = chunks_to_compute(chunks, options.shard)
    partial, done = None, set()
    if partial_dir is not None:
        key = _config_key(db, name, state_dict_checksum(net), tap_list, options, net.resize)
        partial = Path(partial_dir) / f"{name}-{key}"
        partial.mkdir(parents=True, exist_ok=True)
        done = valid_chunks(partial, chunks, mine, db, tap_list, options.measures)
    if options.resize is not None:  # known before any image is decoded at that size
        check_sweep_memory(net, tap_list, (1, 3, *image_side(options.resize)), options.batch_size, device, name)
    skip = done | (set(range(len(chunks))) - mine)
    iterator = iterate_chunks(db, chunks, resize=options.resize, workers=options.workers, skip=skip)
    iterator = chunk_progress(iterator, len(chunks) - len(skip), name, options.progress)

    def save(index: int, frame: pd.DataFrame) -> None:  # each chunk as it is done: a rerun resumes from it
        if partial is not None:
            save_csv(frame, partial / chunk_file_name(db, chunks, index), index=False)

    frames = _score_chunks(scorer, iterator, name, options, save)
    if partial is not None:
        for index in done:
            frames[index] = pd.read_csv(partial / chunk_file_name(db, chunks, index))
    if gather:
        everyone: dict[int, pd.DataFrame] = {}
        for part in gather_objects(frames):
            everyone.update(part)
        frames = everyone
    table = _backbone_table(frames, tap_list, name, options.measures)
    table.attrs["signatures"] = {name: backbone_signature(net, resize=options.resize)}  # what these depend on
    return table


def _score_chunks(
    scorer: TapScorer,
    iterator: Iterable[tuple[int, str, torch.Tensor, torch.Tensor, torch.Tensor]],
    name: str,
    options: SweepOptions,
    save: Callable[[int, pd.DataFrame], None],
) -> dict[int, pd.DataFrame]:
    """Run ``scorer`` over ``(index, ref_id, ref, dists, rows)`` chunks: ``{chunk index: tidy frame}`` with
    columns ``tap, measure, pair, distance``, each frame passed to ``save`` as it is done. Each new reference
    runs once; each new image size is checked against the taps' minimum size and the memory free."""
    net, tap_list = scorer.backbone, scorer.taps
    device = torch.device(options.device)
    modules = [t.module for t in tap_list if t.module]
    min_size = net.min_size(modules) if modules else 1
    current_ref = None
    checked: tuple[int, ...] | None = None if options.resize is None else (1, 3, *image_side(options.resize))
    frames: dict[int, pd.DataFrame] = {}
    for index, ref_id, ref, dists, rows in iterator:
        if min(ref.shape[-2:]) < min_size:
            raise InputError(
                f"images of {ref.shape[-2]}x{ref.shape[-1]} pixels are smaller than the {min_size}x{min_size} that "
                f"the taps of {name} need; resize them up (resize=) or ask for shallower taps"
            )
        if checked != tuple(ref.shape):
            check_sweep_memory(net, tap_list, tuple(ref.shape), options.batch_size, device, name)
            checked = tuple(ref.shape)
        if ref_id != current_ref:
            scorer.set_reference(ref.to(device))
            current_ref = ref_id
        frames[index] = _chunk_frame(scorer.score(dists.to(device)), rows.tolist())
        save(index, frames[index])
    return frames


def _chunk_frame(results: dict[tuple[str, str], torch.Tensor], rows: list[int]) -> pd.DataFrame:
    """One chunk's distances ``{(tap, measure): (B,)}`` as a tidy frame ``tap, measure, pair, distance``."""
    import pandas as pd

    records: dict[str, list] = {"tap": [], "measure": [], "pair": [], "distance": []}
    for (tap, measure), values in results.items():
        records["tap"] += [tap] * len(rows)
        records["measure"] += [measure] * len(rows)
        records["pair"] += rows
        records["distance"] += values.double().tolist()
    return pd.DataFrame(records)


def _backbone_table(
    frames: dict[int, pd.DataFrame], tap_list: Sequence[SweepTap], name: str, measures: Sequence[str]
) -> pd.DataFrame:
    """The chunks' frames in chunk order, with each tap's module, depth and canonicity, and ``cat:`` rows."""
    import pandas as pd

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


def run_sweep(
    db: IQADatabase,
    backbones: Sequence[str | Backbone],
    options: SweepOptions | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    baselines: Sequence[str] = BASELINES,
    bootstrap: int = 0,
    plots: bool = True,
    group_by: str = "training",
    **overrides: Any,
) -> SweepResult:
    """Sweep every tap of each backbone over ``db``, correlate with the scores, write tables and plots.

    Args:
        db: the database.
        backbones: registered backbone names (``@seed46`` stands for a named set of configurations,
            :mod:`percept.eval.configs`) or built backbones.
        options: a :class:`~percept.eval.sweep.SweepOptions`, passed whole to each :func:`sweep_backbone`
            (taps, measures, weights, resize, batch_size, workers, device, progress, network_resize, shard);
            default ``SweepOptions()``. ``options.shard`` ``(rank, world)`` makes this call one job of several
            (a cluster array job): it computes this shard's references into ``out_dir/partial`` and returns
            their rows, without baselines, correlations or plots; a final run without ``shard`` on the same
            ``out_dir`` merges the shards (no network pass is repeated) and adds the rest. Under
            ``torch.distributed`` (several processes initialised) sharding and gathering are automatic and
            only rank 0 writes files.
        out_dir: where ``pairs.csv``, ``scores.csv``, ``correlations.csv``, ``partial/`` and the plots go
            (``None``: nothing written, nothing resumed).
        baselines: reference metrics (see :func:`baseline_scores`); ``()`` for none.
        bootstrap: resamples of references for SROCC intervals (0: none).
        plots: draw ``depth_<measure>.png`` (all backbones), ``depth_<backbone>.png`` and
            ``study_<measure>_by_<group_by>.png`` (every backbone a line, coloured by its group).
        group_by: colour of the study figure's lines: ``"training"``, ``"data"`` or ``"architecture"``.
        **overrides: fields of :class:`~percept.eval.sweep.SweepOptions` (``batch_size=4``, ``progress=True``),
            applied over ``options``: ``run_sweep(db, nets, batch_size=4)`` is
            ``run_sweep(db, nets, SweepOptions(batch_size=4))``.

    Returns:
        A :class:`SweepResult` (a shard's: its scores and an empty correlation table).

    Example:
        >>> run_sweep(db, ["alexnet"], weights=None, out_dir="out", measures=["flat-l2"])  # doctest: +SKIP
        >>> run_sweep(db, ["alexnet"], SweepOptions(shard=(0, 4)), out_dir="out")  # job 0 of 4  # doctest: +SKIP
    """
    import pandas as pd

    options = merge_options(SweepOptions, options, overrides)
    nets = _expand(backbones, group_by)
    out = _out_folder(out_dir, options.shard)
    distributed = distributed_shard()
    writer = out is not None and (distributed is None or distributed[0] == 0)
    files: list[Path] = []
    if out is not None and writer and options.shard is None:
        save_csv(db.table.rename_axis("pair"), out / "pairs.csv")
        files.append(out / "pairs.csv")
    partial_dir = None if out is None else out / "partial"
    frames = [sweep_backbone(db, backbone, options, partial_dir=partial_dir) for backbone in nets]
    if options.shard is not None:
        scores = pd.concat(frames, ignore_index=True)
        scores.insert(0, "database", db.name)
        return SweepResult(scores, pd.DataFrame(), out, [])
    if baselines:
        frames.append(baseline_scores(db, baselines, resize=options.resize, weights=options.weights,
                                      device=options.device))  # fmt: skip
    scores = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    scores.attrs["signatures"] = {key: text for f in frames for key, text in f.attrs.get("signatures", {}).items()}
    scores.insert(0, "database", db.name)
    scores["depth"] = pd.to_numeric(scores["depth"], errors="coerce").astype("Int64")
    table = _signed(correlation_table(scores.drop(columns="database"), db, bootstrap=bootstrap), scores)
    if out is not None and writer:
        files += _write_results(out, scores, table, plots=plots, group_by=group_by)
    return SweepResult(scores, table, out, files)


def _signed(table: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a last column ``signature``: each row's network (its backbone's, or its baseline's)."""
    signatures = scores.attrs.get("signatures", {})
    rows = zip(table["backbone"], table["tap"], strict=True)
    table["signature"] = [signatures.get(f"{b}:{t}", signatures.get(b, "")) for b, t in rows]
    return table


def _expand(backbones: Sequence[str | Backbone], group_by: str) -> list[str | Backbone]:
    """Names with ``@set`` expanded (:mod:`percept.eval.configs`), then the built backbones; checks ``group_by``."""
    from percept.eval.configs import GROUPINGS, expand_backbones

    if group_by not in GROUPINGS:
        raise InputError(f"group_by must be one of {', '.join(GROUPINGS)}, got {group_by!r}")
    built = [b for b in backbones if not isinstance(b, str)]
    return [*expand_backbones([b for b in backbones if isinstance(b, str)]), *built]


def _out_folder(out_dir: str | os.PathLike | None, shard: Shard | None) -> Path | None:
    """``out_dir`` as a folder that exists (``None``: nothing is written); a shard needs one."""
    if shard is not None and out_dir is None:
        raise InputError("a shard's results go to out_dir/partial for the merge run: pass out_dir")
    if out_dir is None:
        return None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_results(out: Path, scores: pd.DataFrame, table: pd.DataFrame, *, plots: bool, group_by: str) -> list[Path]:
    """Write ``scores.csv`` (after one ``# signature: ...`` line per network, see
    :func:`percept.signature.write_signed_csv`), ``correlations.csv`` (its last column ``signature``) and
    (``plots``) the figures into ``out``; the files written."""
    from percept.signature import write_signed_csv

    write_signed_csv(scores, out / "scores.csv", list(scores.attrs.get("signatures", {}).values()), index=False)
    save_csv(table, out / "correlations.csv", index=False)
    files = [out / "scores.csv", out / "correlations.csv"]
    if plots:
        from percept.eval.plots import plot_study, plot_sweep

        files += plot_sweep(table, out)
        files += plot_study(table, out, group_by=group_by)
    return files
