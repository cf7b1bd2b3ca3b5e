"""The toolkit's figures name what they show (issue 25 item 7): each configuration of a study figure, colours
by training kind only when the kinds differ; whole steps and a named criterion on the selection path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")


@pytest.fixture
def figures(monkeypatch):
    """The figures the plotting functions write, kept open for inspection instead of saved."""
    import percept.eval.plots as plots

    kept = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **kw: kept.append(fig))
    monkeypatch.setattr(plots._pyplot(), "close", lambda fig=None: None)
    return kept


def _study(kinds: dict[str, str]) -> pd.DataFrame:
    rows = [
        {"backbone": name, "tap": f"t{i}", "relative_depth": i / 4, "measure": "flat-l2", "training": kind,
         "srocc": 0.5 + 0.1 * i * (k + 1) / 4}
        for k, (name, kind) in enumerate(kinds.items())
        for i in range(5)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_one_kind_gives_each_configuration_its_colour_and_name(figures, tmp_path):
    from percept.eval.plots import plot_study

    plot_study(_study({"alexnet": "supervised classification", "squeezenet1_1": "supervised classification"}),
               tmp_path)  # fmt: skip
    ax = figures[-1].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["alexnet", "squeezenet1_1"]
    colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
    assert colours["alexnet"] != colours["squeezenet1_1"]


def test_several_kinds_colour_by_kind_and_name_each_line(figures, tmp_path):
    from percept.eval.plots import plot_study

    plot_study(_study({"alexnet": "supervised classification", "dino": "self-supervised"}), tmp_path)
    ax = figures[-1].axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["supervised classification", "self-supervised"]
    assert sorted(t.get_text() for t in ax.texts) == ["alexnet", "dino"]


def test_selection_path_has_whole_steps_and_a_named_criterion(figures, tmp_path):
    from percept.eval.plots import plot_selection_path

    path = pd.DataFrame({"step": np.arange(1, 11), "criterion": np.linspace(0.5, 0.8, 10)})
    plot_selection_path(path, 0.6, tmp_path / "path.png", "srocc")
    ax = figures[-1].axes[0]
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 10]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert ax.get_ylabel().startswith("SROCC") and ax.get_xlabel() == "maps selected"
