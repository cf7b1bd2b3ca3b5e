"""Plots of sweep and selection results (matplotlib, written to files; no display needed).

Example:
    >>> from percept.eval.plots import plot_sweep
    >>> plot_sweep(result.correlations, "sweep-out")  # doctest: +SKIP
    [PosixPath('sweep-out/depth_flat-l2.png'), PosixPath('sweep-out/depth_vgg16.png')]
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from percept.io import save_figure

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", str(name))


def _baselines(ax, table: pd.DataFrame, stat: str) -> None:
    rows = table[table["backbone"] == "baseline"]
    styles = ["--", ":", "-.", (0, (5, 1)), (0, (1, 3))]
    for i, (_, row) in enumerate(rows.iterrows()):
        ax.axhline(row[stat], color="0.4", linestyle=styles[i % len(styles)], linewidth=1, label=f"{row['tap']}")


_RELATIVE_DEPTH = "relative depth (0: input, 1: deepest tap)"


def _finish(fig, ax, table: pd.DataFrame, stat: str, xlabel: str, title: str, path: Path, legend: dict | None) -> Path:
    """Finish a correlation-against-depth figure (baselines, labels, grid, a legend unless ``legend`` is None,
    with ``legend`` as extra options) and write it to ``path``."""
    _baselines(ax, table, stat)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(stat.upper().replace("_", " "))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend is not None:
        ax.legend(fontsize=8, loc="best", **legend)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    _pyplot().close(fig)
    return path


def plot_sweep(table: pd.DataFrame, out_dir: str | os.PathLike, stat: str = "srocc") -> list[Path]:
    """Correlation against depth: one figure per measure with every backbone, and one per backbone.

    Args:
        table: from :func:`percept.eval.sweep.correlation_table` (columns ``backbone, tap, depth,
            measure`` and ``stat``). Rows of ``backbone == "baseline"`` are drawn as horizontal lines;
            ``cat:<tap>`` rows (layer concatenation) as a dashed curve.
        out_dir: folder for ``depth_<measure>.png`` (depth relative to each network's deepest tap, so
            networks of different depths share an axis) and ``depth_<backbone>.png`` (absolute depth,
            one curve per measure, canonical taps labelled).
        stat: the column plotted (``srocc``, ``plcc``, ``plcc_logistic``, ``krocc``).

    Returns:
        The files written.

    Example:
        >>> plot_sweep(table, "out", stat="plcc_logistic")  # doctest: +SKIP
    """
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nets = table[table["backbone"] != "baseline"]
    layers = nets[~nets["tap"].astype(str).str.startswith("cat:")]
    cats = nets[nets["tap"].astype(str).str.startswith("cat:")]
    files = []
    for measure, rows in layers.groupby("measure", sort=False):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for backbone, curve in rows.groupby("backbone", sort=False):
            curve = curve.sort_values("depth")
            deepest = max(float(curve["depth"].max()), 1.0)
            ax.plot(curve["depth"] / deepest, curve[stat], marker=".", label=backbone)
        legend = rows["backbone"].nunique() <= 12  # a study of dozens: plot_study colours them by group instead
        title = f"{stat} against depth, measure {measure}"
        path = out / f"depth_{_safe(measure)}.png"
        files.append(_finish(fig, ax, table, stat, _RELATIVE_DEPTH, title, path, {} if legend else None))
    for backbone, rows in layers.groupby("backbone", sort=False):
        fig, ax = plt.subplots(figsize=(max(8, 0.22 * rows["depth"].nunique()), 4.5))
        for measure, curve in rows.groupby("measure", sort=False):
            curve = curve.sort_values("depth")
            ax.plot(curve["depth"], curve[stat], marker=".", label=measure)
        for measure, curve in cats[cats["backbone"] == backbone].groupby("measure", sort=False):
            curve = curve.sort_values("depth")
            ax.plot(curve["depth"], curve[stat], linestyle="--", marker="s", label=f"{measure}, concatenated")
        canonical = rows[rows["canonical"].astype(bool)].drop_duplicates("depth").sort_values("depth")
        if not canonical.empty:
            ax.set_xticks(canonical["depth"], canonical["tap"], rotation=45, fontsize=8)
        title, path = f"{backbone}: {stat} at every tap", out / f"depth_{_safe(backbone)}.png"
        files.append(_finish(fig, ax, table, stat, "depth (stage index; canonical taps labelled)", title, path, {}))
    return files


def plot_study(table: pd.DataFrame, out_dir: str | os.PathLike, group_by: str = "training", stat: str = "srocc"):
    """Correlation against relative depth, every configuration a line: one figure per measure.

    Lines are coloured by group (``group_by``) when the configurations fall in more than one group, each
    named at its deepest point; when they share one group (two random-weight networks are both
    "supervised classification"), each configuration gets a colour of its own and the legend names them.

    Args:
        table: from :func:`percept.eval.sweep.correlation_table` (columns ``backbone, tap, relative_depth,
            measure``, the grouping column and ``stat``); baselines are drawn as horizontal lines,
            ``cat:<tap>`` rows are left out.
        out_dir: folder for ``study_<measure>_by_<group_by>.png``.
        group_by: ``"training"`` (the function trained for), ``"data"`` or ``"architecture"``
            (see :mod:`percept.eval.configs`).
        stat: the column plotted.

    Returns:
        The files written.

    Example:
        >>> plot_study(result.correlations, "out", group_by="architecture")  # doctest: +SKIP
        [PosixPath('out/study_flat-l2_by_architecture.png')]
    """
    from percept.eval.configs import GROUPINGS

    if group_by not in GROUPINGS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPINGS)}, got {group_by!r}")
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nets = table[(table["backbone"] != "baseline") & ~table["tap"].astype(str).str.startswith("cat:")]
    groups = list(dict.fromkeys(nets[group_by].astype(str)))
    colours = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    files = []
    by_group = len(groups) > 1
    for measure, rows in nets.groupby("measure", sort=False):
        fig, ax = plt.subplots(figsize=(9, 5))
        names = list(dict.fromkeys(rows["backbone"].astype(str)))
        own = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
        for name, curve in rows.groupby("backbone", sort=False):
            curve = curve.sort_values("relative_depth")
            if by_group:
                colour = colours(groups.index(str(curve[group_by].iloc[0])) % colours.N)
                ax.plot(curve["relative_depth"], curve[stat], color=colour, alpha=0.75, linewidth=1.2)
                last = curve.iloc[-1]  # each configuration named where its line ends
                ax.annotate(str(name), (last["relative_depth"], last[stat]), fontsize=6, color=colour,
                            xytext=(2, 0), textcoords="offset points", va="center")  # fmt: skip
            else:
                colour = own(names.index(str(name)) % own.N)
                ax.plot(curve["relative_depth"], curve[stat], color=colour, alpha=0.85, linewidth=1.2, label=name)
        if by_group:
            for k, group in enumerate(groups):
                ax.plot([], [], color=colours(k % colours.N), label=group)
        count = rows["backbone"].nunique()
        kind = f"by {group_by}" if by_group else f"(all {groups[0]})" if groups else ""
        title = f"{stat.upper()} against depth, {count} configurations {kind}, {measure}"
        path = out / f"study_{_safe(measure)}_by_{group_by}.png"
        legend = {"title": group_by if by_group else "configuration"}
        files.append(_finish(fig, ax, table, stat, _RELATIVE_DEPTH, title, path, legend))
    return files


def plot_selection_path(
    path_table: pd.DataFrame, baseline: float, out_file: str | os.PathLike, criterion: str = "plcc"
) -> Path:
    """Correlation after each step of a forward selection, with the all-maps baseline as a line.

    Args:
        path_table: columns ``step`` and ``criterion`` (from :class:`percept.eval.select.Selection`).
        baseline: the all-maps value of the criterion.
        out_file: the PNG written.
        criterion: what the selection maximised, ``"plcc"`` (Pearson after the logistic fit) or ``"srocc"``:
            the y axis is named after it. The x axis counts maps, in whole steps.

    Example:
        >>> plot_selection_path(selection.path, selection.baseline, "path.png")  # doctest: +SKIP
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(path_table["step"], path_table["criterion"], marker="o", label="selected maps")
    ax.axhline(baseline, color="0.4", linestyle="--", label="all maps")
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("maps selected")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    names = {"plcc": "PLCC after the logistic fit", "srocc": "SROCC"}
    ax.set_ylabel(f"{names.get(criterion, criterion)} (the selection's criterion)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out_file = Path(out_file)
    save_figure(fig, out_file, dpi=120)
    plt.close(fig)
    return out_file
