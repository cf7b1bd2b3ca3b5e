"""The toolkit's contract for a backbone: every tool runs on it and agrees with the library.

:func:`check_toolkit` is what the test suite runs over one configuration of every family of the catalogue,
and what a plugin author runs on their own backbone (it needs the ``eval`` extra: pandas, scipy, Pillow).
This module is its public home for plugins' tests (``from percept.eval.contract import check_toolkit``,
next to ``percept.plugin``'s contract kit, which does not import the toolkit).
On a small synthetic database in a CSV manifest (three references, three distortions each), it checks:

* the sweep visits the input and every stage, one row per pair x tap x measure, finite, with the
  canonical taps marked, and at every tap each measure equals the library's number for the spec that
  defines it (:data:`MEASURE_SPECS`): ``PerceptualLoss(f"{backbone}:{taps}/{readout}/{distance}")`` on
  the same images, within ``rtol`` (1e-5; 1e-4 for ``ssim``, whose float32 variances cancel);
* ``select``'s per-map SSIM, averaged over a tap's maps, is the sweep's ``ssim``; a saved selection
  loads as a metric that reproduces the matrix;
* ``finetune``'s per-channel errors, summed over a tap, are the sweep's ``unit-l2``; the saved channel
  weights load as a metric equal to ``errors @ w``;
* ``visualize``: activation maximisation and top patches of the deepest canonical tap.

Example:
    >>> check_toolkit("alexnet", weights=None, side=64, folder="/tmp/check")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from percept.backbones.base import Backbone
    from percept.eval.datasets import IQADatabase

# measure -> (readout, distance, the sweep's value from the library's value v and the tap's h * w)
MEASURE_SPECS: dict[str, tuple[str, str, Callable[[torch.Tensor, int], torch.Tensor]]] = {
    "flat-l2": ("raw", "l2", lambda v, hw: (v * hw).sqrt()),
    "mse": ("raw", "mse", lambda v, hw: v),
    "unit-l2": ("unit", "l2", lambda v, hw: v),
    "cosine": ("raw", "cosine", lambda v, hw: v),
    "ssim": ("raw", "ssim", lambda v, hw: v),
    "meanstd": ("meanstd", "l2", lambda v, hw: v.sqrt()),
    "gram": ("gram", "l2", lambda v, hw: v.sqrt()),
}


def synthetic_database(folder: str | os.PathLike, *, side: int = 64, refs: int = 3, levels: int = 3):
    """A tiny IQA database in a CSV manifest: smooth random references, noisier distortions scored lower.

    Returns:
        The :class:`~percept.eval.datasets.IQADatabase` (``refs * levels`` pairs of ``side x side`` images).

    Example:
        >>> len(synthetic_database("/tmp/db", side=32))  # doctest: +SKIP
        9
    """
    from PIL import Image

    from percept.eval.datasets import load_database

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = ["dis_img_path,ref_img_path,score"]
    yy, xx = np.mgrid[0:side, 0:side] / side
    for r in range(refs):
        base = 0.5 + 0.3 * np.sin(6 * xx + 4 * yy * (r + 1) + r)[..., None] * np.array([1.0, 0.7, 0.4])
        ref = np.clip(base + 0.05 * rng.standard_normal((side, side, 3)), 0, 1)
        Image.fromarray((ref * 255).round().astype(np.uint8)).save(folder / f"ref{r}.png")
        for level in range(1, levels + 1):
            dist = np.clip(ref + 0.05 * level * rng.standard_normal(ref.shape), 0, 1)
            Image.fromarray((dist * 255).round().astype(np.uint8)).save(folder / f"dist{r}_{level}.png")
            lines.append(f"dist{r}_{level}.png,ref{r}.png,{9 - 2 * level}")
    (folder / "scores.csv").write_text("\n".join(lines) + "\n")
    return load_database("csv", folder / "scores.csv", higher_is_better=True)


_Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _pairs(db) -> _Pairs:
    """The sweep's own tensors: (distorted (P, 3, H, W), references (P, 3, H, W), rows (P,))."""
    from percept.eval.sweep import iterate_chunks, make_chunks

    xs, ys, rows = [], [], []
    for _, _, ref, dists, r in iterate_chunks(db, make_chunks(db, 64)):
        xs.append(dists)
        ys.append(ref.expand_as(dists))
        rows.append(r)
    return torch.cat(xs), torch.cat(ys), torch.cat(rows)


def _close(got, want, what: str, rtol: float, atol: float) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        worst = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), atol)))
        raise AssertionError(f"{what}: toolkit {got.tolist()} vs library {want.tolist()} (worst relative {worst:.2e})")


def check_toolkit(backbone: str, *, weights="imagenet", side: int = 64, folder: str | os.PathLike) -> None:
    """Run sweep (every tap, every measure), select, finetune and visualize on ``backbone`` and check them.

    Args:
        backbone: a registered name.
        weights: as :func:`percept.create_backbone` (a file, a tag, ``None`` for random weights).
        side: image side of the synthetic database (at least what the deepest tap needs; a network that
            runs at one size only is built with ``resize=True``).
        folder: where the database and the saved results go.

    Raises:
        AssertionError: naming the tool, the tap and the measure that disagree.

    Example:
        >>> check_toolkit("stlpips.alexnet", side=64, folder=tmp_path)  # doctest: +SKIP
    """
    from percept.eval.sweep import build_backbone, run_sweep

    folder = Path(folder)
    db = synthetic_database(folder / "db", side=side)
    net = build_backbone(backbone, weights=weights, network_resize=True)
    result = run_sweep(db, [backbone], measures=list(MEASURE_SPECS), weights=weights, baselines=(), plots=False,
                       network_resize=True)  # fmt: skip
    plain = result.scores[~result.scores["tap"].str.startswith("cat:")]
    pairs = _pairs(db)
    _check_sweep(backbone, net, db, plain, weights, pairs)
    _check_select(backbone, net, db, plain, weights, folder, pairs)
    _check_finetune(backbone, net, db, plain, weights, folder, pairs)
    _check_visualize(backbone, net, db, side)


def _check_sweep(backbone: str, net: Backbone, db: IQADatabase, plain: pd.DataFrame, weights, pairs: _Pairs) -> None:
    """The sweep's rows (every stage, pair and measure, finite, with depths and canonical marks) and its
    distances against the library's spec ``<backbone>:<taps>/<readout>/<distance>`` per measure."""
    from percept import PerceptualLoss
    from percept.eval.sweep import INPUT_TAP, sweep_taps

    taps = sweep_taps(net)
    stages = [t for t in taps if t.name != INPUT_TAP]
    assert len(stages) == len(net.module_paths), f"{backbone}: the sweep visits {len(stages)} stages"
    assert len(plain) == len(db) * len(taps) * len(MEASURE_SPECS), f"{backbone}: {len(plain)} rows"
    assert plain.groupby(["tap", "measure"]).size().eq(len(db)).all(), f"{backbone}: a tap lacks pairs"
    assert np.isfinite(plain["distance"].to_numpy(dtype=float)).all(), f"{backbone}: non-finite distances"
    assert set(plain["depth"]) == set(range(len(taps))), f"{backbone}: depths {sorted(set(plain['depth']))}"
    canonical = {net.module_paths[net.tap_info(t).index] for t in net.canonical_taps}
    assert set(plain.loc[plain["canonical"], "module"]) == canonical, f"{backbone}: canonical taps not marked"

    x, y, rows = pairs
    modules = [t.module for t in stages]
    options: dict[str, Any] = {"resize": True} if net.resize else {}
    with torch.no_grad():
        sizes = {k: v.shape[-2] * v.shape[-1] for k, v in net.iter_taps(x[:1], modules)}
    for measure, (readout, distance, to_sweep) in MEASURE_SPECS.items():
        spec = f"{backbone}:{','.join(modules)}/{readout}/{distance}"
        loss = PerceptualLoss(spec, weights=weights, reduction="none", **options)
        with torch.no_grad():
            per_tap = loss.pipeline.tap_distances(x, y)
        got = plain[plain["measure"] == measure].set_index(["module", "pair"])["distance"]
        for tap in stages:
            want = to_sweep(per_tap[tap.module].double(), sizes[tap.module]).numpy()
            rtol = 1e-4 if measure == "ssim" else 1e-5
            swept = got.loc[[(tap.module, int(r)) for r in rows]].to_numpy()
            what = f"{backbone} tap {tap.name} ({tap.module}) measure {measure} vs {readout}/{distance}"
            _close(swept, want, what, rtol, 1e-6 * max(1.0, float(np.abs(want).max())))


def _check_select(
    backbone: str, net: Backbone, db: IQADatabase, plain: pd.DataFrame, weights, folder: Path, pairs: _Pairs
) -> None:
    """The per-map matrix against the sweep's ssim, and a saved selection as a metric against its maps."""
    from percept.eval.select import default_taps, forward_select, map_scores, selection_pipeline

    selected_taps = default_taps(net)
    ms = map_scores(db, net, taps=selected_taps, weights=weights)  # the backbone built above: one build less
    channels = [net.tap_info(t).channels for t in selected_taps]
    assert ms.matrix.shape == (len(db), sum(channels)) and np.isfinite(ms.matrix).all(), f"{backbone}: select"
    ssim_rows = plain[plain["measure"] == "ssim"].set_index(["module", "pair"])["distance"]
    start = 0
    for tap, c in zip(selected_taps, channels, strict=True):
        module = net.module_paths[net.tap_info(tap).index]
        block = 1 - ms.matrix[:, start : start + c].astype(np.float64).mean(1)
        sweep_ssim = ssim_rows.loc[[(module, p) for p in range(len(db))]]
        _close(block, sweep_ssim, f"{backbone} select: maps of {tap} vs the sweep's ssim", 1e-4, 1e-5)
        start += c
    selection = forward_select(ms, db, criterion="srocc", max_maps=3, screen=16)
    path = selection.save(folder / "selection.json")
    x, y, rows = pairs
    with torch.no_grad():
        d = selection_pipeline(path)(x, y).double().numpy()
    chosen = 1 - ms.matrix[rows.numpy()][:, selection.maps].astype(np.float64).mean(1)
    _close(d, chosen, f"{backbone}: the saved selection as a metric", 1e-4, 1e-5)


def _check_finetune(
    backbone: str, net: Backbone, db: IQADatabase, plain: pd.DataFrame, weights, folder: Path, pairs: _Pairs
) -> None:
    """The per-channel errors against the sweep's unit-l2, and saved channel weights as a metric."""
    from percept.eval.finetune import channel_errors, finetune, finetuned_pipeline

    errors = channel_errors(db, net, weights=weights)
    unit_rows = plain[plain["measure"] == "unit-l2"].set_index(["module", "pair"])["distance"]
    start = 0
    for tap in net.canonical_taps:
        c = net.tap_info(tap).channels
        module = net.module_paths[net.tap_info(tap).index]
        summed = errors.matrix[:, start : start + c].astype(np.float64).sum(1)
        sweep_unit = unit_rows.loc[[(module, p) for p in range(len(db))]]
        _close(summed, sweep_unit, f"{backbone} finetune: errors of {tap} vs the sweep's unit-l2", 1e-4, 1e-6)
        start += c
    tuned = finetune(errors, db, epochs=3, patience=3)
    saved = tuned.save(folder / "channel_weights.json")
    w = np.concatenate([tuned.weights[t] for t in dict.fromkeys(errors.taps)])
    x, y, rows = pairs
    with torch.no_grad():
        d = finetuned_pipeline(saved)(x, y).double().numpy()
    expected = errors.matrix[rows.numpy()].astype(np.float64) @ w
    _close(d, expected, f"{backbone}: the saved channel weights as a metric", 1e-4, 1e-6)


def _check_visualize(backbone: str, net: Backbone, db: IQADatabase, side: int) -> None:
    """Activation maximisation stays finite in [0, 1]; top patches come back for every image."""
    from percept.eval.visualize import activation_maximization, top_patches

    deepest = net.canonical_taps[-1]
    size = max(side, 32)
    image = activation_maximization(net, deepest, 0, size=size, steps=2)
    assert image.shape == (3, size, size) and math.isfinite(float(image.sum())), f"{backbone}: visualize"
    assert float(image.min()) >= 0 and float(image.max()) <= 1, f"{backbone}: visualize left [0, 1]"
    patches, peaks, files = top_patches(net, deepest, 0, [db.table["ref"].iloc[0], db.table["dist"].iloc[0]], k=2)
    assert len(patches) == len(peaks) == len(files) == 2 and all(math.isfinite(p) for p in peaks), backbone
