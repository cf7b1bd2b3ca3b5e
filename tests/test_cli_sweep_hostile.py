"""``percept sweep`` under attack: outputs that are inputs (issue 27 case 1), and partial results keyed by the
network's weights, never by how they were asked for (case 4)."""

from __future__ import annotations

import warnings

import pytest
import torch
from _hostile import ALIASES, alias, manifest, refused

from percept.eval.datasets import load_database

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


def _sweep(db_root, path, out):
    return ["sweep", "csv", str(path), "--data-root", str(db_root), "--out", str(out), "--backbones", "pixel",
            "--weights", "none", "--baselines", "", "--no-plots", "--no-progress", "--lower-is-better"]  # fmt: skip


@pytest.mark.parametrize("how", ALIASES)
def test_out_folder_holding_the_manifest_is_refused(tmp_path, capsys, how):
    """Case 1: `sweep csv D/scores.csv --data-root D --out D` replaced the subjective scores."""
    data = manifest(tmp_path / "D")
    path = alias(data, how, tmp_path / "links")
    refused(_sweep(tmp_path / "D", path, tmp_path / "D"), data, capsys)


def test_plots_named_like_an_input_image_are_refused(tmp_path, capsys):
    data = manifest(tmp_path / "D", name="m.csv")
    image = tmp_path / "D" / "ref0.png"  # the sweep writes OUT/*.png
    err = refused(_sweep(tmp_path / "D", data, tmp_path / "D"), image, capsys)
    assert "*.png" in err


def test_output_elsewhere_runs(tmp_path, capsys):
    from percept.cli import main

    data = manifest(tmp_path / "D")
    assert main(_sweep(tmp_path / "D", data, tmp_path / "out")) == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "scores.csv").is_file()


def test_partial_results_are_keyed_by_the_networks_weights(tmp_path):
    """Case 4: two networks with other random weights (same name) never share chunks."""
    from percept import create_backbone
    from percept.eval.sweep import sweep_backbone

    data = manifest(tmp_path / "D", refs=1, levels=2)
    db = load_database("csv", data, root=tmp_path / "D", higher_is_better=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        first = create_backbone("alexnet", weights=None)
        torch.manual_seed(1)
        second = create_backbone("alexnet", weights=None)
    options = dict(taps=["relu1"], measures=["flat-l2"], resize=64)
    sweep_backbone(db, first, partial_dir=tmp_path / "partial", **options)
    resumed = sweep_backbone(db, second, partial_dir=tmp_path / "partial", **options)
    fresh = sweep_backbone(db, second, **options)
    assert resumed["distance"].tolist() == pytest.approx(fresh["distance"].tolist())
    assert len(list((tmp_path / "partial").iterdir())) == 2  # one folder per network
    again = sweep_backbone(db, second, partial_dir=tmp_path / "partial", **options)  # the same network: reused
    assert again["distance"].tolist() == pytest.approx(fresh["distance"].tolist())
    assert len(list((tmp_path / "partial").iterdir())) == 2
