"""The sweep's tables: reference metrics (baselines, 2AFC) and the agreement of every tap with people."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from percept.errors import install_hint
from percept.eval.datasets import IQADatabase
from percept.eval.sweep.chunks import as_rgb, chunk_progress, iterate_chunks, make_chunks
from percept.eval.sweep.shards import chunks_to_compute, gather_objects

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd


BASELINES = ("psnr", "ssim", "ms-ssim")
SIMILARITY_BASELINES = {"psnr", "ssim", "ms-ssim"}


def baseline_scores(
    db: IQADatabase, names: Sequence[str] = BASELINES, *, resize=None, weights="imagenet", device="cpu", shard=None
) -> pd.DataFrame:
    """Classic and published metrics on every pair, as reference lines for the sweep's plots.

    ``psnr``, ``ssim`` and ``ms-ssim`` are piq's (data range 1; piq comes with the ``eval`` extra,
    ``pip install "percept-torch[eval]"``); any other name is a percept spec or preset (``lpips-vgg``,
    ``dists`` where registered), built with ``weights``. A metric that cannot be computed is left out
    with a warning: one warning naming every baseline that piq's absence leaves out, one per other
    failure (images too small for MS-SSIM, weights missing).

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
    piq = _import_piq([name for name in names if name in SIMILARITY_BASELINES])
    for name in names:
        if name in SIMILARITY_BASELINES:
            if piq is None:
                continue
            fn = {"psnr": piq.psnr, "ssim": piq.ssim, "ms-ssim": piq.multi_scale_ssim}[name]
            fns[name] = lambda x, y, fn=fn: fn(x, y, data_range=1.0, reduction="none")
        else:
            from percept.pipeline import build_pipeline

            # A heads.json written by percept learn is the learned-heads metric it holds.
            try:
                if name.endswith(".json"):
                    fns[name] = build_pipeline("learned-heads", weights=weights, file=name).to(device)
                else:
                    fns[name] = build_pipeline(name, weights=weights).to(device)
            except PerceptError as exc:
                warnings.warn(f"baseline {name!r} left out: {exc}", stacklevel=2)
    records: list[tuple[int, str, int, float]] = []
    chunks = make_chunks(db, 16)
    mine, gather = chunks_to_compute(chunks, shard)
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
        parts = gather_objects((records, set(fns)))
        kept = set.intersection(*(done for _, done in parts))
        order = {name: k for k, name in enumerate(names)}
        records = sorted((r for part, _ in parts for r in part if r[1] in kept), key=lambda r: (r[0], order[r[1]]))
    frame = pd.DataFrame([r[1:] for r in records], columns=["measure", "pair", "distance"])
    frame.insert(0, "backbone", "baseline")
    frame.insert(1, "tap", frame["measure"])
    frame.insert(2, "module", "")
    frame.insert(3, "depth", math.nan)
    frame.insert(4, "canonical", False)
    frame.attrs["signatures"] = _baseline_signatures(fns, resize)
    return frame


def _baseline_signatures(fns: dict[str, Callable], resize) -> dict[str, str]:
    """The signatures of the baselines that ran, keyed ``baseline:<name>``: a pipeline's own
    (:func:`percept.signature.signature`), and
    ``<name>|piq=<version>|resize=...`` for piq's PSNR and SSIM."""
    import importlib.metadata

    from percept.pipeline import Pipeline
    from percept.signature import signature

    out = {}
    for name, fn in fns.items():
        if isinstance(fn, Pipeline):
            out[f"baseline:{name}"] = signature(fn, resize=resize)
        else:
            size = "none" if resize is None else "x".join(map(str, resize)) if isinstance(resize, tuple) else resize
            out[f"baseline:{name}"] = f"{name}|piq={importlib.metadata.version('piq')}|range=0,1|resize={size}"
    return out


def _import_piq(needed: Sequence[str]):
    """piq, or ``None`` when no baseline in ``needed`` uses it or it is missing (then one warning naming them)."""
    if not needed:
        return None
    try:
        import piq
    except ImportError:
        listed = ", ".join(needed)
        warnings.warn(
            f"baselines left out: {listed} (they need piq, which is not installed; "
            f"{install_hint('eval')}, or pip install piq)",
            stacklevel=3,
        )
        return None
    return piq


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
            _, low, high = bootstrap_ci(_signed_srocc(pred, target[pairs], sign), groups[pairs], n_boot=bootstrap)
            row["srocc_low"], row["srocc_high"] = low, high
        rows.append(row)
    table = pd.DataFrame(rows)
    table["n"] = table["n"].astype(int)
    table = table.replace({np.inf: np.nan})
    return describe_taps(table)


def _signed_srocc(pred: np.ndarray, target: np.ndarray, sign: float) -> Callable[[np.ndarray], float]:
    """``f(rows) = sign * SROCC`` of ``pred`` and ``target`` on those rows: a bootstrap's statistic."""
    from percept.eval.stats import srocc

    def statistic(rows: np.ndarray) -> float:
        return sign * srocc(pred[rows], target[rows])

    return statistic


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
    for start in chunk_progress(starts, len(starts), "2afc", progress):
        rows = table.iloc[start : start + batch_size]
        images = {k: torch.stack([as_rgb(load_image(p)) for p in rows[k]]).to(device) for k in ("ref", "p0", "p1")}
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
