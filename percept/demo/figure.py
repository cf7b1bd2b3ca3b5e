"""The demo's figure: each tap's mean distance against distortion level, one panel per distortion.

Each tap has its own colour and line style (ten qualitative colours, then dashed, dotted ...), so the
19 curves of MobileNetV2 stay apart; in each panel the tap whose distance follows the level best (the
highest Spearman rank correlation, as ``correlations.csv`` gives it) is drawn thick, starred and named.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from percept.demo.inputs import DISTORTIONS
from percept.io import save_figure

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D")


def best_taps(correlations: pd.DataFrame | None) -> dict[str, tuple[str, float, int]]:
    """For each distortion column: the tap with the highest rank correlation, that correlation, and how many
    other taps (curves: taps of one module count once) reach it too (a rank correlation over few levels often
    ties at its maximum).

    Args:
        correlations: the table of :func:`percept.demo.level_correlations` (``tap, module, <distortion>...,
            all``); ``None`` gives ``{}``. Taps with a NaN correlation are skipped; of tied taps the first row
            (the shallower tap) is named.

    Example:
        >>> import pandas as pd
        >>> table = pd.DataFrame({"tap": ["stage1", "stage2"], "module": ["a", "b"], "blur": [0.5, 0.9]})
        >>> best_taps(table)
        {'blur': ('stage2', 0.9, 0)}
    """
    if correlations is None:
        return {}
    out = {}
    for column in correlations.columns:
        if column in ("tap", "module"):
            continue
        rows = zip(correlations["tap"], correlations["module"], correlations[column], strict=True)
        values = [(str(t), m, float(v)) for t, m, v in rows if not math.isnan(v)]
        if values:
            top = max(v for _, _, v in values)
            tied = [(t, m) for t, m, v in values if v >= top - 1e-9]
            # Taps of one module (stage1 = block1) are one curve: ties are counted by module.
            out[str(column)] = (tied[0][0], top, len({m for _, m in tied}) - 1)
    return out


def curve_style(k: int, best: bool = False) -> dict[str, Any]:
    """Matplotlib line options of curve ``k``: one of ten qualitative colours, then the next line style and marker
    for each further ten; the best tap's curve thick and starred.

    Example:
        >>> curve_style(11)["linestyle"], curve_style(0, best=True)["marker"]
        ('--', '*')
    """
    from matplotlib import colormaps

    group = k // 10
    return {
        "color": colormaps["tab10"](k % 10),
        "linestyle": LINESTYLES[group % len(LINESTYLES)],
        "marker": "*" if best else MARKERS[group % len(MARKERS)],
        "markersize": 11 if best else 3,
        "linewidth": 3.0 if best else 1.2,
        "zorder": 3 if best else 2,
    }


def draw_scores(
    scores: pd.DataFrame, title: str, depth: dict[str, int], correlations: pd.DataFrame | None = None
) -> Any:
    """The figure of :func:`plot_scores` (a matplotlib ``Figure``), not yet written.

    Args:
        scores: the table of :func:`percept.demo.score_ladders` (``tap, module, distortion, level, setting,
            distance`` ...).
        title: the figure's title.
        depth: each tap's position, shallow to deep (orders the curves and the legend).
        correlations: the table of :func:`percept.demo.level_correlations`, to mark the best tap per panel.

    Returns:
        A ``matplotlib.figure.Figure`` with one panel per distortion.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    means = scores.groupby(["tap", "distortion", "level"], sort=False)["distance"].mean().reset_index()
    peak = means.groupby("tap")["distance"].transform("max")
    means["normalised"] = means["distance"] / peak.where(peak > 0, 1.0)
    by_module: dict[str, list[str]] = {}
    for tap, module in scores[["tap", "module"]].drop_duplicates().itertuples(index=False):
        by_module.setdefault(module, []).append(tap)
    curves = sorted(by_module.values(), key=lambda taps: depth[taps[0]])
    distortions = [d for d in DISTORTIONS if d.name in set(scores["distortion"])]
    settings = scores.groupby(["distortion", "level"])["setting"].first()
    best = best_taps(correlations)

    fig = Figure(figsize=(4.2 * len(distortions) + 2.4, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(distortions), sharey=True, squeeze=False)[0]
    for ax, distortion in zip(axes, distortions, strict=True):
        part = means[means["distortion"] == distortion.name]
        winner = best.get(distortion.name)
        for k, taps in enumerate(curves):
            line = part[part["tap"] == taps[0]].sort_values("level")
            ax.plot(line["level"], line["normalised"], **curve_style(k, winner is not None and winner[0] in taps))
        if winner is not None:
            tie = f"; {winner[2]} more {'curve ties' if winner[2] == 1 else 'curves tie'}" if winner[2] else ""
            ax.set_title(
                f"{distortion.label}\nbest (thick, starred): {winner[0]} (rho = {winner[1]:.3f}{tie})", fontsize=9
            )
        else:
            ax.set_title(distortion.label)
        levels = sorted(part["level"].unique())
        ax.set_xticks(levels)
        ax.set_xticklabels([f"{lv}\n{settings[(distortion.name, lv)]:.3g}" for lv in levels], fontsize=8)
        ax.set_xlabel(f"level ({distortion.parameter})")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean distance / its maximum, per tap")
    axes[0].set_ylim(bottom=0)
    # The legend shows each tap's plain style: the best taps differ from panel to panel.
    handles = [Line2D([], [], **curve_style(k)) for k in range(len(curves))]
    labels = [" = ".join(taps) for taps in curves]
    fig.legend(handles, labels, loc="outside right center", fontsize=7, title="tap (shallow to deep)")
    fig.suptitle(title, fontsize=10)
    return fig


def plot_scores(
    scores: pd.DataFrame,
    path: str | os.PathLike,
    title: str,
    depth: dict[str, int],
    correlations: pd.DataFrame | None = None,
) -> None:
    """Write the per-tap curves (mean distance over images vs level, normalised per tap) to a PNG.

    Taps that name the same module (``stage1`` and ``block1``) have identical curves and share one line.
    With ``correlations``, each panel names and marks its best tap (:func:`best_taps`).
    """
    save_figure(draw_scores(scores, title, depth, correlations), path, dpi=110)
