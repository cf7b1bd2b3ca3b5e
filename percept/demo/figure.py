"""The demo's figure: each tap's mean distance against distortion level, one panel per distortion."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from percept.demo.inputs import DISTORTIONS
from percept.io import save_figure

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def plot_scores(scores: pd.DataFrame, path: str | os.PathLike, title: str, depth: dict[str, int]) -> None:
    """Write the per-tap curves (mean distance over images vs level, normalised per tap) to a PNG.

    Taps that name the same module (``stage1`` and ``block1``) have identical curves and share one line.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    means = scores.groupby(["tap", "distortion", "level"], sort=False)["distance"].mean().reset_index()
    peak = means.groupby("tap")["distance"].transform("max")
    means["normalised"] = means["distance"] / peak.where(peak > 0, 1.0)
    by_module: dict[str, list[str]] = {}
    for tap, module in scores[["tap", "module"]].drop_duplicates().itertuples(index=False):
        by_module.setdefault(module, []).append(tap)
    curves = sorted(by_module.values(), key=lambda taps: depth[taps[0]])
    distortions = [d for d in DISTORTIONS if d.name in set(scores["distortion"])]
    settings = scores.groupby(["distortion", "level"])["setting"].first()

    fig = Figure(figsize=(4.2 * len(distortions) + 2.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(distortions), sharey=True, squeeze=False)[0]
    cmap = colormaps["viridis"]
    for ax, distortion in zip(axes, distortions, strict=True):
        part = means[means["distortion"] == distortion.name]
        for k, taps in enumerate(curves):
            line = part[part["tap"] == taps[0]].sort_values("level")
            colour = cmap(k / max(len(curves) - 1, 1))
            ax.plot(line["level"], line["normalised"], marker="o", markersize=3, color=colour, label=" = ".join(taps))
        levels = sorted(part["level"].unique())
        ax.set_xticks(levels)
        ax.set_xticklabels([f"{lv}\n{settings[(distortion.name, lv)]:.3g}" for lv in levels], fontsize=8)
        ax.set_xlabel(f"level ({distortion.parameter})")
        ax.set_title(distortion.label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean distance / its maximum, per tap")
    axes[0].set_ylim(bottom=0)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7, title="tap (shallow to deep)")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path, dpi=110)
