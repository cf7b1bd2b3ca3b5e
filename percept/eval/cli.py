"""The research toolkit's commands, plugged into ``percept`` through the ``register_commands`` hook.

::

    percept sweep  DATABASE PATH --backbones vgg16,alexnet [--measures flat-l2,ssim] [--out DIR] ...
    percept select DATABASE PATH --backbone alexnet [--taps all] [--criterion plcc|srocc] [--out DIR] ...
    percept visualize BACKBONE TAP CHANNEL [--images FOLDER | IMAGE ...] [--out map.png]
    percept finetune DATABASE PATH --backbone vgg16 [--taps conv1,conv2] [--loss plcc|rank] [--out DIR] ...

``DATABASE`` is one of ``tid2013, tid2008, kadid10k, csiq, live, cidiq-50, cidiq-100, pipal, csv``;
``PATH`` its folder (the manifest file for ``csv``). The CLI does not import this module: it is
reached through percept's own entry point ``toolkit`` (:mod:`percept.eval.plugin`).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from percept.cli.common import add_device_option, add_weights_option, device_arg, resize_arg, split_list, weights_arg
from percept.errors import InputError
from percept.hookspecs import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from percept.eval.select import MapScores
    from percept.eval.sweep import FeatureOptions


def _at_least(args: argparse.Namespace, **minimum: int) -> None:
    """Refuse integer options below their minimum, naming the option: ``_at_least(args, workers=0)``."""
    for name, low in minimum.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise InputError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {value}")


def _positive_finite(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"--{name.replace('_', '-')} must be a finite number > 0, got {value}")


def _database(args: argparse.Namespace):
    from percept.eval.datasets import IQADatabase, load_database

    _at_least(args, limit_references=1, batch_size=1, workers=0)
    kwargs: dict[str, Any] = {}
    if args.database.lower() in ("csv", "manifest"):
        if args.data_root:
            kwargs["root"] = args.data_root
        if args.higher_is_better is not None:
            kwargs["higher_is_better"] = args.higher_is_better
    elif args.scores:
        kwargs["scores"] = args.scores
    db = load_database(args.database, args.path, **kwargs)
    if not isinstance(db, IQADatabase):
        raise InputError(f"{args.database} is a 2AFC set; sweep and select need a database with scores per image")
    if args.limit_references is not None:
        keep = db.references[: args.limit_references]
        db = db.subset(db.table["ref_id"].isin(keep).to_numpy())
    return db


def _add_database_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("database", metavar="DATABASE", help="tid2013, tid2008, kadid10k, csiq, live, cidiq-50, "
                        "cidiq-100, pipal or csv (a comma-separated manifest with a header row naming the columns "
                        "dis_img_path,ref_img_path,score in any order; dis_type and level are optional, other "
                        "columns are ignored)")  # fmt: skip
    parser.add_argument("path", metavar="PATH", help="the database's folder, as distributed (the file, for csv)")
    parser.add_argument("--scores", default=None,
                        help="the score file, if not in its usual place: CSIQ .xlsx or CSV; CID:IQ MOS50.mat / "
                        "MOS100.mat or CSV")  # fmt: skip
    parser.add_argument("--data-root", default=None, help="csv: the folder image paths are relative to")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--higher-is-better", dest="higher_is_better", action="store_true", default=None,
                      help="csv: scores are MOS-like (higher: better quality)")  # fmt: skip
    kind.add_argument("--lower-is-better", dest="higher_is_better", action="store_false",
                      help="csv: scores are DMOS-like (higher: worse quality)")  # fmt: skip
    parser.add_argument("--limit-references", type=int, default=None, metavar="K",
                        help="use only the first K reference images (quick trials)")  # fmt: skip
    add_weights_option(parser)
    parser.add_argument("--resize", default=None, help="resize images to SIDE or HEIGHTxWIDTH (default: native)")
    parser.add_argument("--network-resize", action="store_true",
                        help="networks that run at one input size only (MaxViT, LeViT, BEiT) resize every image to "
                        "that size on the way in (create_backbone's resize=True); others run as usual")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=8, help="distorted images per forward pass (default 8)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers decoding images (default 0)")
    add_device_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _feature_options(args: argparse.Namespace) -> FeatureOptions:
    """How ``sweep``, ``select`` and ``finetune`` compute features (taps, weights, resizes, batches, device,
    progress), from their shared options: built once per command and passed whole."""
    from percept.eval.sweep import FeatureOptions

    return FeatureOptions(
        taps=split_list(args.taps),
        weights=weights_arg(args.weights),
        resize=resize_arg(args.resize),
        batch_size=args.batch_size,
        workers=args.workers,
        device=str(device_arg(args.device)),
        progress=not args.no_progress,
        network_resize=args.network_resize,
    )


def _guard_outputs(args: argparse.Namespace, outputs: list, db=None, images: str | None = None) -> None:
    """The output guard (:func:`percept.io.check_outputs`) of a toolkit command: none of ``outputs`` (files and
    patterns such as ``OUT/*.png``) is the database's manifest or score files, one of its images, an image of
    ``images`` or the weights file, by any path or link. Call before anything is written."""
    from percept.io import check_outputs

    inputs: list = [getattr(args, "path", None), getattr(args, "scores", None), images, getattr(args, "weights", None)]
    if db is not None:
        inputs += sorted(set(db.table["ref"].astype(str)) | set(db.table["dist"].astype(str)))
    check_outputs(outputs, inputs, what=f"{getattr(args, 'command', None) or 'toolkit'} output")


def _shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    rank, sep, world = text.partition("/")
    if not sep or not rank.strip().isdigit() or not world.strip().isdigit():
        raise InputError(f"--shard must be K/N with 0 <= K < N, e.g. 0/4, got {text!r}")
    return int(rank), int(world)


def cmd_sweep(args: argparse.Namespace) -> int:
    """``percept sweep``: every tap of the backbones, the tables and the plots."""
    from percept.eval.sweep import SweepOptions, merge_options, run_sweep
    from percept.io import ensure_output_folder

    backbones = split_list(args.backbones)
    if not backbones:
        raise InputError(f"--backbones needs at least one backbone name (or @seed46), got {args.backbones!r}")
    _at_least(args, bootstrap=0, top=0)
    ensure_output_folder(args.out)  # a read-only folder or a file in the way fails now, not after the sweep
    db = _database(args)
    out = Path(args.out)
    _guard_outputs(args, [out / "pairs.csv", out / "scores.csv", out / "correlations.csv", out / "*.png"], db)
    sweep = {"measures": split_list(args.measures) or ["flat-l2"], "shard": _shard(args.shard)}
    options = merge_options(SweepOptions, _feature_options(args), sweep)
    result = run_sweep(
        db,
        backbones,
        options,
        out_dir=args.out,
        baselines=split_list(args.baselines) or (),
        bootstrap=args.bootstrap,
        plots=not args.no_plots,
        group_by=args.group_by,
    )
    if args.shard:
        chunks = result.scores[["backbone", "pair"]].drop_duplicates()
        print(f"shard {args.shard}: {len(chunks)} (backbone, pair) rows in {args.out}/partial; "
              f"run again without --shard on the same --out to merge")  # fmt: skip
        return 0
    table = result.correlations
    best = table[table["backbone"] != "baseline"].sort_values("srocc", ascending=False)
    print(f"{db.name}: {len(db)} pairs, {db.table['ref_id'].nunique()} references; best taps by SROCC:")
    columns = ["backbone", "tap", "depth", "measure", "srocc", "plcc", "plcc_logistic"]
    print(best[columns].head(args.top).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    baselines = table[table["backbone"] == "baseline"]
    if not baselines.empty:
        print("baselines:")
        print(
            baselines[["tap", "srocc", "plcc", "plcc_logistic"]].to_string(
                index=False, float_format=lambda v: f"{v:.4f}"
            )
        )
    files = [str(f) for f in result.files]
    if len(files) > 8:  # a study of dozens of backbones: the tables, the study figures and a count of the rest
        shown = [f for f in files if f.endswith(".csv") or Path(f).name.startswith("study_")]
        files = [*shown, f"and {len(files) - len(shown)} more figures in {args.out}"]
    print(f"wrote {', '.join(files)}", file=sys.stderr)
    return 0


def _configure_sweep(sweep: argparse.ArgumentParser) -> None:
    _add_database_args(sweep)
    sweep.add_argument("--backbones", required=True,
                       help="comma-separated backbone names, e.g. vgg16,alexnet; @seed46 names 46 configurations "
                       "(CNNs, ViTs, Swin, DINO, MAE, DINOv2, CLIP, semi-/weakly supervised, segmentation, "
                       "non-deep)")  # fmt: skip
    sweep.add_argument("--group-by", default="training", choices=["training", "data", "architecture"],
                       help="colour of the lines in the study figure study_<measure>_by_<group>.png "
                       "(default training)")  # fmt: skip
    sweep.add_argument("--taps", default=None, help="comma-separated taps (default: the input and every stage)")
    sweep.add_argument("--measures", default="flat-l2",
                       help="comma-separated: flat-l2, mse, unit-l2, cosine, ssim, meanstd, gram or READOUT/DISTANCE "
                       "(default flat-l2)")  # fmt: skip
    sweep.add_argument("--baselines", default="psnr,ssim,ms-ssim",
                       help="comma-separated reference metrics: psnr, ssim, ms-ssim, or percept specs/presets such as "
                       "lpips-vgg (default psnr,ssim,ms-ssim; '' for none)")  # fmt: skip
    sweep.add_argument("--bootstrap", type=int, default=0, help="resamples of references for SROCC intervals")
    sweep.add_argument("--out", default="percept-sweep", help="output folder (default percept-sweep)")
    sweep.add_argument("--no-plots", action="store_true", help="write no plots")
    sweep.add_argument("--top", type=int, default=10, help="rows of the printed ranking (default 10)")
    sweep.add_argument("--shard", default=None, metavar="K/N",
                       help="one job of N (K = 0..N-1): compute this share of the references into OUT/partial; "
                       "a final run without --shard merges (cluster array jobs)")  # fmt: skip


@hookimpl
def register_commands(register) -> None:
    """Register ``sweep``, ``select``, ``finetune`` and ``visualize`` (the ``register_commands`` hook).

    Example:
        >>> names = []
        >>> register_commands(lambda name, configure, run, **kw: names.append(name))
        >>> names
        ['sweep', 'select', 'finetune', 'visualize']
    """
    register(
        "sweep",
        _configure_sweep,
        cmd_sweep,
        help="correlate every tap of one or more networks with an IQA database's scores",
        description="For each backbone, compare reference and distorted images at every tap (the input and "
        "every stage output) with each measure, correlate with the subjective scores, and write pairs.csv, "
        "scores.csv, correlations.csv and plots of correlation against depth. Reruns resume from OUT/partial.",
    )
    register(
        "select",
        _configure_select,
        cmd_select,
        help="select, one at a time, the feature maps that best agree with an IQA database's scores",
        description="Compare every feature map of the chosen taps between reference and distorted image (SSIM "
        "between the maps by default) into a (pairs x maps) matrix, then add maps greedily while the criterion "
        "of their mean score rises. Writes map_scores.npz (reused by reruns), path.csv, cv.csv, path.png and "
        "selection.json (a metric: PerceptualLoss('map-selection', selection=FILE)).",
    )
    register(
        "finetune",
        _configure_finetune,
        cmd_finetune,
        help="learn non-negative channel weights (LPIPS-style heads) from an IQA database's scores",
        description="Compute each pair's per-channel error (unit-normalised channels, squared difference, mean over "
        "space) once, then fit non-negative channel weights on the training references with a correlation or "
        "ranking loss, stopping early on the validation references; report before/after on held-out references.",
    )
    register(
        "visualize",
        _configure_visualize,
        cmd_visualize,
        help="show what one feature map responds to: activation maximisation and top patches, as an image grid",
    )


def _map_scores_config(args: argparse.Namespace, db, network: str, options: FeatureOptions) -> dict:
    """What a cached map_scores.npz must have been computed from to be reused: database (name, pairs, first
    and last image), backbone, taps asked for, measure, weights (``network``: the checksum of the built
    network's weights, whatever they came from: a tag, a file, a random draw), image resize and network resize."""
    import json

    table = db.table
    taps = None if options.taps is None else list(options.taps)
    config = {"database": [db.name, len(db), str(table["dist"].iloc[0]), str(table["dist"].iloc[-1])],
              "backbone": args.backbone, "taps": taps, "measure": args.measure, "weights": network,
              "resize": options.resize, "network_resize": bool(options.network_resize)}  # fmt: skip
    return json.loads(json.dumps(config))  # as it reads back from the file


def _cached_map_scores(cache: Path, config: dict, pairs: int, maps: int):
    """The per-map scores in ``cache`` if they are whole and were computed from ``config`` (same network by its
    weights' checksum, same database, taps, measure, resizes) for ``pairs`` x ``maps``; else None, with a
    warning naming the file and why it is computed again."""
    from percept.cli.common import warn
    from percept.eval.select import MapScores

    if not cache.exists():
        return None
    try:
        scores = MapScores.load(cache)
    except InputError as exc:  # truncated, empty, foreign: computed again
        warn(f"{exc}; computing it again")
        return None
    problem = "it was computed with other settings" if scores.config != config else scores.problem(pairs, maps)
    if problem is not None:
        warn(f"'{cache}' is not a cache of this run ({problem}); computing it again")
        return None
    print(f"reusing {cache} (--recompute to compute it again)", file=sys.stderr)
    return scores


def _select_map_scores(args: argparse.Namespace, db, cache: Path) -> MapScores:
    """``percept select``'s per-map scores: those in ``cache`` when they were computed from the same settings
    (unless ``--recompute``), else computed and saved there."""
    from percept.backbones.weights import state_dict_checksum
    from percept.eval.select import map_channels, map_scores
    from percept.eval.sweep import build_backbone

    options = _feature_options(args)
    net = build_backbone(args.backbone, weights=options.weights, network_resize=options.network_resize)
    config = _map_scores_config(args, db, state_dict_checksum(net), options)
    if not args.recompute:
        scores = _cached_map_scores(cache, config, len(db), sum(map_channels(net, options.taps)[1]))
        if scores is not None:
            return scores
    scores = map_scores(db, net, options, measure=args.measure)
    scores.backbone = args.backbone
    scores.config = config
    scores.save(cache)
    return scores


def cmd_select(args: argparse.Namespace) -> int:
    """``percept select``: per-map scores once, greedy forward selection, path, baseline, CV, saved selection."""

    from percept.eval.plots import plot_selection_path
    from percept.eval.select import SelectOptions, cross_validate, forward_select
    from percept.io import ensure_output_folder, save_csv

    _at_least(args, screen=0, folds=0, max_maps=1)
    if not (math.isfinite(args.tol) and args.tol >= 0):
        raise InputError(f"--tol must be a finite number >= 0, got {args.tol}")
    out = ensure_output_folder(args.out)
    db = _database(args)
    names = ("map_scores.npz", "path.csv", "cv.csv", "selection.json", "path.png")
    _guard_outputs(args, [out / name for name in names], db)
    scores = _select_map_scores(args, db, out / "map_scores.npz")
    folds = args.folds
    references = db.table["ref_id"].nunique()
    if folds and folds > references:
        folds = references if references >= 2 else 0
        print(f"{references} reference image(s): cross-validation with {folds} folds instead of {args.folds}"
              + ("" if folds else " (none: it needs 2 references)"), file=sys.stderr)  # fmt: skip
    options = SelectOptions(criterion=args.criterion, tol=args.tol, max_maps=args.max_maps, screen=args.screen or None)
    selection = forward_select(scores, db, options)
    if folds:
        selection.cv = cross_validate(scores, db, options, folds=folds, seed=args.seed)
        save_csv(selection.cv, out / "cv.csv", index=False)
    save_csv(selection.path.assign(signature=scores.signature), out / "path.csv", index=False)  # what it depends on
    selection.save(out / "selection.json")
    plot_selection_path(selection.path, selection.baseline["criterion"], out / "path.png", args.criterion)
    fmt = {"float_format": lambda v: f"{v:.4f}", "index": False}
    print(f"{db.name}: {len(db)} pairs, {scores.matrix.shape[1]} maps of {scores.backbone}; criterion {args.criterion}")
    print(selection.path[["step", "tap", "channel", "criterion", "srocc", "plcc_logistic"]].to_string(**fmt))
    print(f"stopped: {selection.stopped}")
    base = selection.baseline
    print(
        f"all maps: criterion {base['criterion']:.4f}, srocc {base['srocc']:.4f}, "
        f"plcc_logistic {base['plcc_logistic']:.4f}"
    )
    if selection.cv is not None:
        cv = selection.cv
        print(f"{folds}-fold cross-validation by reference (test pairs):")
        print(cv[["fold", "maps", "test_srocc", "test_plcc_logistic", "all_maps_test_srocc",
                  "all_maps_test_plcc_logistic"]].to_string(**fmt))  # fmt: skip
    print(f"wrote {out / 'selection.json'} (load: PerceptualLoss('map-selection', selection=FILE))",
          file=sys.stderr)  # fmt: skip
    return 0


def _configure_select(select: argparse.ArgumentParser) -> None:
    _add_database_args(select)
    select.add_argument("--backbone", required=True, help="backbone name, e.g. alexnet or vgg16")
    select.add_argument("--taps", default=None, help="comma-separated taps (default: every conv layer's ReLU)")
    select.add_argument("--measure", default="ssim", choices=["ssim", "mse"], help="per-map measure (default ssim)")
    select.add_argument("--criterion", default="plcc", choices=["plcc", "srocc"],
                        help="plcc: Pearson after the 5-parameter logistic (default); srocc: Spearman")  # fmt: skip
    select.add_argument("--tol", type=float, default=1e-4, help="stop when a step gains no more (default 1e-4)")
    select.add_argument("--max-maps", type=int, default=None, help="cap on the number of maps (default: none)")
    select.add_argument(
        "--screen",
        type=int,
        default=64,
        help="candidates screened per step, best by linear Pearson (0: all; default 64)",
    )
    select.add_argument("--folds", type=int, default=5,
                        help="cross-validation folds by reference (0: none; default 5)")  # fmt: skip
    select.add_argument("--seed", type=int, default=0, help="seed of the fold split (default 0)")
    select.add_argument("--recompute", action="store_true", help="recompute map_scores.npz even if present")
    select.add_argument("--out", default="percept-select", help="output folder (default percept-select)")


def cmd_finetune(args: argparse.Namespace) -> int:
    """``percept finetune``: per-channel errors once, non-negative channel weights, before/after on held-out refs."""

    from percept.eval.finetune import channel_errors, finetune
    from percept.io import ensure_output_folder

    _at_least(args, epochs=1, patience=1)
    _positive_finite(args, "lr")
    out = ensure_output_folder(args.out)
    db = _database(args)
    _guard_outputs(args, [out / "channel_errors.npz", out / "channel_weights.json"], db)
    errors = channel_errors(db, args.backbone, _feature_options(args))
    errors.save(out / "channel_errors.npz")
    result = finetune(errors, db, loss=args.loss, epochs=args.epochs, lr=args.lr, patience=args.patience,
                      seed=args.seed)  # fmt: skip
    result.save(out / "channel_weights.json")
    print(f"{db.name}: {len(db)} pairs, {errors.matrix.shape[1]} channels of {args.backbone}; loss {args.loss}, "
          f"{len(result.history)} steps")  # fmt: skip
    print("split  pairs  srocc_before  srocc_after  plcc_before  plcc_after")
    for split, row in result.report.items():
        print(f"{split:5s}  {row['pairs']:5d}  {row['srocc_before']:12.4f}  {row['srocc_after']:11.4f}  "
              f"{row['plcc_before']:11.4f}  {row['plcc_after']:10.4f}")  # fmt: skip
    print(f"wrote {out / 'channel_weights.json'} (load: PerceptualLoss('channel-weights', file=FILE))", file=sys.stderr)
    return 0


def _configure_finetune(tune: argparse.ArgumentParser) -> None:
    _add_database_args(tune)
    tune.add_argument("--backbone", required=True, help="backbone name, e.g. vgg16")
    tune.add_argument("--taps", default=None, help="comma-separated taps (default: the canonical taps)")
    tune.add_argument("--loss", default="plcc", choices=["plcc", "rank"],
                      help="plcc: 1 - Pearson correlation (default); rank: pairwise ranking")  # fmt: skip
    tune.add_argument("--epochs", type=int, default=500, help="Adam steps at most (default 500)")
    tune.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05)")
    tune.add_argument("--patience", type=int, default=50, help="early-stopping patience in steps (default 50)")
    tune.add_argument("--seed", type=int, default=0, help="seed of the reference split (default 0)")
    tune.add_argument("--out", default="percept-finetune", help="output folder (default percept-finetune)")


def cmd_visualize(args: argparse.Namespace) -> int:
    """``percept visualize``: activation maximisation and top patches of one map, saved as an image grid."""
    from percept.eval.sweep import build_backbone
    from percept.eval.visualize import activation_maximization, save_grid, top_patches
    from percept.io import ensure_output_folder, standard_stream

    _at_least(args, channel=0, k=1, size=1, steps=1)
    ensure_output_folder(Path(args.out).parent)  # a missing folder is made; a read-only one fails before the work
    if Path(args.out).is_dir():
        raise InputError(f"--out must name a PNG file, got the folder '{args.out}'")
    # the grid is written as PNG (to a file named .png, or to standard output: '-', /dev/stdout)
    if standard_stream(args.out) is None and Path(args.out).suffix.lower() != ".png":
        raise InputError(f"--out must name a .png file (visualize writes a PNG image grid), got '{args.out}'")
    images = args.images[0] if args.images and len(args.images) == 1 else args.images  # a folder, or files
    for each in args.images or [None]:
        _guard_outputs(args, [args.out], images=each)
    device = device_arg(args.device)
    net = build_backbone(args.backbone, weights=weights_arg(args.weights), network_resize=args.network_resize)
    net = net.to(device)
    tiles = [activation_maximization(net, args.tap, args.channel, size=args.size, steps=args.steps)]
    if args.images:
        patches, peaks, files = top_patches(net, args.tap, args.channel, images, k=args.k)
        tiles += patches
        table = sys.stderr if standard_stream(args.out) == 1 else sys.stdout  # the PNG owns stdout when it goes there
        for peak, file in zip(peaks, files, strict=True):
            print(f"{peak:.4f}\t{file}", file=table)
    out = save_grid(tiles, Path(args.out), nrow=min(len(tiles), 5))
    print(f"wrote {out} (first tile: activation maximisation; then the top patches, strongest first)", file=sys.stderr)
    return 0


def _configure_visualize(vis: argparse.ArgumentParser) -> None:
    vis.add_argument("backbone", metavar="BACKBONE", help="backbone name")
    vis.add_argument("tap", metavar="TAP", help="tap name, e.g. relu1")
    vis.add_argument("channel", metavar="CHANNEL", type=int, help="channel (map) index in the tap")
    vis.add_argument("--images", nargs="+", default=None, metavar="IMAGE",
                     help="image files, or a folder of them, for the top activating patches (as demo's --images, "
                     "which also takes files)")  # fmt: skip
    vis.add_argument("--k", type=int, default=9, help="top patches shown (default 9)")
    vis.add_argument("--size", type=int, default=128, help="side of the synthesised image (default 128)")
    vis.add_argument("--steps", type=int, default=200, help="gradient-ascent steps (default 200)")
    add_weights_option(vis)
    vis.add_argument("--network-resize", action="store_true",
                     help="a network that runs at one input size only resizes images to it (resize=True)")  # fmt: skip
    vis.add_argument("--out", default="map.png", help="output PNG (default map.png)")
    add_device_option(vis)
