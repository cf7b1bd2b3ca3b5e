"""How well a metric agrees with people on 2AFC and JND sets, per subset: :func:`agreement` and ``percept agreement``.

::

    percept agreement bapps /data/bapps lpips-alex --subsets 'val/*'
    percept agreement bapps-jnd /data/bapps alexnet:all/unit/l2 --weights none
    percept agreement nights /data/nights learned-heads --file dino/heads.json --resize 224 --out nights.csv

A 2AFC set (``bapps``, ``nights``, ``triplets``) is scored by the 2AFC agreement
(:func:`~percept.eval.stats.two_afc_agreement`, with ``d(ref, p0)`` and ``d(ref, p1)``), a JND set
(``bapps-jnd``) by the JND mAP (:func:`~percept.eval.stats.jnd_map`, with ``d(p0, p1)``): the arithmetic
of ``lpips.trainer.score_2afc_dataset`` and ``score_jnd_dataset``, the metric called as they call it.
Each subset is scored on its own, then the mean of the subsets' scores (as the LPIPS paper reports
BAPPS) is the last row.

The module is light at import (the command registers without torch or pandas).
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from percept.cli.common import (
    add_device_option,
    add_weights_option,
    device_arg,
    resize_arg,
    split_list,
    weights_arg,
)
from percept.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd
    import torch

DATABASES = ("bapps", "bapps-jnd", "nights", "triplets")
"""The sets ``percept agreement`` reads (``load_database`` names)."""
MEAN = "mean"
"""The ``subset`` of the last row of :func:`agreement`: the mean of the subsets' scores."""


def select_subsets(db, patterns: Sequence[str] | None):
    """The rows of ``db`` whose subset matches one of ``patterns`` (names or ``fnmatch`` patterns such as
    ``"val/*"``), as a database of the same kind; ``None`` keeps every row.

    Raises:
        InputError: a pattern matches no subset (the message lists the subsets there are).

    Example:
        >>> select_subsets(db, ["val/*"]).table["subset"].unique().tolist()  # doctest: +SKIP
        ['val/synthetic']
    """
    if not patterns:
        return db
    subsets = db.table["subset"].astype(str)
    known = sorted(subsets.unique())
    keep = subsets.map(lambda s: False)
    for pattern in patterns:
        hits = subsets.map(lambda s, p=pattern: s == p or fnmatch.fnmatchcase(s, p))
        if not hits.any():
            raise InputError(f"no subset of {db.name} matches {pattern!r}; its subsets are {', '.join(known)}")
        keep = keep | hits
    return type(db)(db.name, db.table[keep.to_numpy()].reset_index(drop=True), db.root)


def load_metric(
    metric: Any,
    *,
    weights: Any = "imagenet",
    file: str | None = None,
    device: str | torch.device | None = None,
    **options: Any,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A metric to score with: a spec string or preset built (:func:`~percept.pipeline.build_pipeline`), or
    a module or function ``f(x, y) -> (N,)`` taken as it is.

    Args:
        metric: ``"lpips-alex"``, ``"alexnet:all/unit/l2"``, ``"learned-heads"`` (with ``file``), a
            :class:`~percept.pipeline.Pipeline`, ``PerceptualLoss``/``PerceptualMetric``-like module, or a function.
        weights: backbone weights for a spec string (``None``: random).
        file: passed as ``file=`` to a preset that reads one (``learned-heads``, ``channel-weights``).
        device: where a spec string's network is put (default the CPU); a module stays where it is.
        **options: more keyword arguments of the spec's preset or backbone.

    Example:
        >>> f = load_metric("alexnet:all/unit/l2", weights=None)  # doctest: +SKIP
        >>> f(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)).shape  # doctest: +SKIP
        torch.Size([2])
    """
    if isinstance(metric, str):
        from percept.pipeline import build_pipeline

        if file is not None:
            options["file"] = str(file)
        return build_pipeline(metric, weights=weights, **options).to(device or "cpu").eval()
    if file is not None or options:
        raise InputError("file= and other build options apply to a spec string, not to a metric already built")
    if not callable(metric):
        raise InputError(f"metric must be a spec string, a module or a function f(x, y) -> (N,), got {metric!r}")
    return metric


def _images(paths: Sequence[str], resize) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1]: the files read, grey made colour, resized if asked; one size required."""
    import torch

    from percept.images import load_image, resize_image

    images = []
    for path in paths:
        image = load_image(path)
        image = image if resize is None else resize_image(image, resize)
        images.append(image.expand(3, -1, -1) if image.shape[0] == 1 else image)
    sizes = {tuple(i.shape[1:]) for i in images}
    if len(sizes) > 1:
        first = tuple(images[0].shape[1:])
        odd, size = next((p, tuple(i.shape[1:])) for p, i in zip(paths, images, strict=True) if i.shape[1:] != first)
        raise InputError(f"'{odd}' is {size} pixels but '{paths[0]}' is {first}: images of one "
                         "batch must share a size; pass resize= (CLI: --resize SIDE)")  # fmt: skip
    return torch.stack(images)


def _call(metric, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    import torch

    with torch.no_grad():
        d = metric(x, y)
    if not isinstance(d, torch.Tensor) or d.reshape(-1).shape[0] != x.shape[0]:
        got = tuple(d.shape) if isinstance(d, torch.Tensor) else type(d).__name__
        raise InputError(f"the metric returned {got} for a batch of {x.shape[0]} pairs; expected a tensor (N,)")
    return d.detach().reshape(-1).double().cpu().numpy()


def distances(
    db,
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    resize: int | tuple[int, int] | None = None,
    progress: bool = False,
) -> np.ndarray:
    """The metric's distances on every row: ``(N, 2)`` ``d(ref, p0), d(ref, p1)`` of a 2AFC set, ``(N,)``
    ``d(p0, p1)`` of a JND set (the arguments in the order lpips' scoring functions pass them).

    Args:
        db: a :class:`~percept.eval.datasets.TwoAFCDatabase` or :class:`~percept.eval.datasets.JNDDatabase`.
        metric: ``f(x, y) -> (N,)`` on ``(N, 3, H, W)`` images in [0, 1] (see :func:`load_metric`).
        batch_size: rows per call.
        device: where the images go (default: the metric's parameters' device, else the CPU).
        resize: a side or ``(height, width)`` every image is resized to (:func:`percept.images.resize_image`).
        progress: a tqdm progress bar on stderr.

    Example:
        >>> d = distances(db, load_metric("alexnet:all/unit/l2", weights=None))  # doctest: +SKIP
        >>> d.shape  # doctest: +SKIP
        (300, 2)
    """
    import numpy as np

    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    columns = [("ref", "p0"), ("ref", "p1")] if "ref" in db.table.columns else [("p0", "p1")]
    if device is None:
        params = getattr(metric, "parameters", None)
        device = next((p.device for p in params()), "cpu") if callable(params) else "cpu"
    table = db.table.reset_index(drop=True)
    out = np.zeros((len(table), len(columns)))
    starts = range(0, len(table), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=db.name, unit="batch", file=sys.stderr)
    was_training = getattr(metric, "training", None)
    if was_training:
        metric.eval()  # type: ignore[attr-defined]  # scoring: dropout off, as lpips scores
    try:
        for start in starts:
            rows = table.iloc[start : start + batch_size]
            loaded = {k: _images(list(rows[k]), resize).to(device) for k in {c for pair in columns for c in pair}}
            for j, (a, b) in enumerate(columns):
                out[start : start + len(rows), j] = _call(metric, loaded[a], loaded[b])
    finally:
        if was_training:
            metric.train(True)  # type: ignore[attr-defined]
    return out if len(columns) > 1 else out[:, 0]


def score_rows(db, d: np.ndarray) -> pd.DataFrame:
    """Per-subset scores of precomputed distances (:func:`distances`), then the mean row.

    Returns:
        2AFC: ``subset, n, 2afc, human`` (``human``: people's agreement with each other, ``mean(j^2 +
        (1 - j)^2)``, the ceiling); JND: ``subset, n, jnd_map``. The last row is ``subset == "mean"``: the
        mean of the subsets' scores, ``n`` their total.

    Example:
        >>> score_rows(db, distances(db, metric))  # doctest: +SKIP
    """
    import numpy as np
    import pandas as pd

    from percept.eval.stats import jnd_map, two_afc_agreement

    two_afc = d.ndim == 2
    rows = []
    for subset, index in sorted(db.table.groupby("subset").indices.items()):
        try:
            if two_afc:
                judge = db.table["judge"].to_numpy(dtype=float)[index]
                score = two_afc_agreement(d[index, 0], d[index, 1], judge)
                human = float(np.mean(judge**2 + (1 - judge) ** 2))
                rows.append({"subset": subset, "n": len(index), "2afc": score, "human": human})
            else:
                same = db.table["same"].to_numpy(dtype=float)[index]
                rows.append({"subset": subset, "n": len(index), "jnd_map": jnd_map(d[index], same)})
        except InputError as exc:
            raise InputError(f"subset {subset!r} of {db.name}: {exc}") from None
    table = pd.DataFrame(rows)
    mean = {"subset": MEAN, "n": int(table["n"].sum())}
    mean.update({c: float(table[c].mean()) for c in table.columns if c not in ("subset", "n")})
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)


def agreement(
    db,
    metric: Any,
    *,
    subsets: Sequence[str] | None = None,
    weights: Any = "imagenet",
    file: str | None = None,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    resize: int | tuple[int, int] | None = None,
    progress: bool = False,
    **options: Any,
) -> pd.DataFrame:
    """Score a metric on a 2AFC or JND set, per subset: 2AFC agreement or JND mAP, then their mean.

    Args:
        db: a :class:`~percept.eval.datasets.TwoAFCDatabase` (BAPPS 2AFC, NIGHTS, a triplet manifest) or a
            :class:`~percept.eval.datasets.JNDDatabase` (BAPPS JND).
        metric: a spec string or preset (``"lpips-alex"``, ``"learned-heads"`` with ``file=``), or a built
            metric: a module or function ``f(x, y) -> (N,)`` on images in [0, 1] (:func:`load_metric`).
        subsets: names or patterns (``"val/*"``) of the subsets to score; default all.
        weights: backbone weights for a spec string.
        file: the file a preset reads (``learned-heads``: ``heads.json``).
        batch_size: rows per call of the metric.
        device: where the network runs (a spec string: default the CPU).
        resize: resize every image to a side or ``(height, width)`` first (NIGHTS: 224 as DreamSim does).
        progress: a tqdm progress bar.
        **options: more keyword arguments for building a spec string.

    Returns:
        A DataFrame, one row per subset and a last row ``"mean"`` (see :func:`score_rows`): columns
        ``subset, n, 2afc, human`` for 2AFC sets, ``subset, n, jnd_map`` for JND sets.

    Example:
        >>> from percept.eval.datasets import load_database
        >>> agreement(load_database("bapps", "/data/bapps"), "lpips-alex", subsets=["val/*"])  # doctest: +SKIP
    """
    from percept.eval.datasets import JNDDatabase, TwoAFCDatabase

    if not isinstance(db, (TwoAFCDatabase, JNDDatabase)):
        raise InputError(f"agreement scores the 2AFC and JND sets {', '.join(DATABASES)}, got {type(db).__name__} "
                         f"{getattr(db, 'name', '')!r} (correlations on IQA databases: `percept sweep`)")  # fmt: skip
    db = select_subsets(db, subsets)
    built = load_metric(metric, weights=weights, file=file, device=device, **options)
    d = distances(db, built, batch_size=batch_size, device=device, resize=resize, progress=progress)
    return score_rows(db, d)


# -- the command ---------------------------------------------------------------------------------------


def command_inputs(args: argparse.Namespace, db) -> list:
    """Every file a command on a 2AFC/JND set reads: the set's table, ``--file``, ``--weights``, the images.

    Example:
        >>> import argparse
        >>> command_inputs(argparse.Namespace(path="t.csv", file=None, weights=None), db)  # doctest: +SKIP
        [PosixPath('t.csv'), '/data/p0/0.png', ...]
    """
    from pathlib import Path

    path = Path(args.path)
    tables = [path / "data.csv", path / "nights" / "data.csv"] if path.is_dir() else [path]
    images = set()
    for column in ("ref", "p0", "p1"):
        if column in db.table.columns:
            images |= set(db.table[column].astype(str))
    files = [f for f in (getattr(args, "file", None), getattr(args, "weights", None)) if f and Path(f).is_file()]
    return [*tables, *files, *sorted(images)]


def cmd_agreement(args: argparse.Namespace) -> int:
    """``percept agreement``: the table per subset on stdout, and ``--out`` as CSV."""
    from percept.eval.datasets import READERS, load_database
    from percept.io import check_outputs, save_csv

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be an integer >= 1, got {args.batch_size}")
    kwargs: dict[str, Any] = {}
    for option, key, database in (("data_root", "root", "triplets"), ("min_votes", "min_votes", "nights")):
        if getattr(args, option) is not None:
            if args.database.lower().rstrip("s") != database.rstrip("s"):
                raise InputError(f"--{option.replace('_', '-')} is an option of {database}, not of {args.database}")
            kwargs[key] = getattr(args, option)
    if args.database.lower() in READERS and args.database.lower() not in DATABASES:
        raise InputError(f"{args.database} is an IQA database with scores per image; agreement scores the 2AFC "
                         f"and JND sets {', '.join(DATABASES)} (IQA correlations: `percept sweep`)")  # fmt: skip
    db = load_database(args.database, args.path, **kwargs)
    check_outputs([args.out], command_inputs(args, db), what="agreement output (--out)")
    table = agreement(db, args.spec, subsets=split_list(args.subsets), weights=weights_arg(args.weights),
                      file=args.file, batch_size=args.batch_size, device=device_arg(args.device),
                      resize=resize_arg(args.resize), progress=not args.no_progress)  # fmt: skip
    score = "2afc" if "2afc" in table.columns else "jnd_map"
    measure = "2AFC agreement" if score == "2afc" else "JND mAP"
    unit = "triplets" if score == "2afc" else "pairs"
    print(f"{db.name}: {int(table['n'].iloc[-1])} {unit}, {measure} of {args.spec}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.out:
        save_csv(table, args.out, index=False)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("database", metavar="DATABASE", help="bapps (2AFC), bapps-jnd, nights or triplets "
                        "(a CSV manifest ref,p0,p1,judge[,split])")  # fmt: skip
    parser.add_argument("path", metavar="PATH", help="the set's folder as distributed (the manifest, for triplets)")
    parser.add_argument("spec", metavar="SPEC", help="the metric: a spec or preset (lpips-alex, alexnet:all/unit/l2, "
                        "learned-heads with --file)")  # fmt: skip
    parser.add_argument("--file", default=None, help="the file a preset reads (learned-heads: OUT/heads.json)")
    add_weights_option(parser)
    parser.add_argument("--subsets", default=None,
                        help="comma-separated subsets or patterns to score, e.g. 'val/*' (default: all)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=16, help="rows per forward pass (default 16)")
    parser.add_argument("--resize", default=None, help="resize images to SIDE or HEIGHTxWIDTH (default: native)")
    parser.add_argument("--data-root", default=None, help="triplets: the folder image paths are relative to")
    parser.add_argument("--min-votes", type=int, default=None,
                        help="nights: only triplets with at least this many votes (DreamSim: 6)")  # fmt: skip
    add_device_option(parser)
    parser.add_argument("--out", default=None, help="also write the table as CSV to this file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register_commands(register: Callable[..., None]) -> None:
    """Register ``percept agreement`` (called from :func:`percept.eval.plugin.register_commands`).

    Example:
        >>> names = []
        >>> register_commands(lambda name, configure, run, **kw: names.append(name))
        >>> names
        ['agreement']
    """
    register(
        "agreement",
        _configure,
        cmd_agreement,
        help="score a metric on a 2AFC or JND set (BAPPS, NIGHTS, a triplet manifest), per subset",
        description="Compute the metric's distances on every triplet (2AFC: d(ref, p0), d(ref, p1)) or pair (JND: "
        "d(p0, p1)) and report, per subset and their mean, the 2AFC agreement with people (and people's own, "
        "the ceiling) or the JND mAP, as the lpips package scores BAPPS.",
    )
