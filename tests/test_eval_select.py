"""Forward selection of feature maps: planted maps, exactness of the running sums, CV, saving as a metric."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from _eval_fakes import make_tid

from percept import PerceptualLoss, RandomWeightsWarning, create_backbone
from percept.cli import main
from percept.eval.datasets import load_database
from percept.eval.select import (
    MapScores,
    cross_validate,
    default_taps,
    forward_select,
    load_selection,
    map_scores,
    selection_pipeline,
)
from percept.eval.stats import srocc

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


def _planted(pairs=120, maps=60, seed=0):
    """Scores (MOS) and a map matrix where map 17 is SSIM-like and predicts MOS perfectly (monotone)."""
    rng = np.random.default_rng(seed)
    mos = rng.uniform(1, 9, pairs)
    matrix = rng.uniform(0.2, 1.0, (pairs, maps)).astype(np.float32)
    matrix[:, 17] = (0.3 + 0.07 * mos).astype(np.float32)
    # Map 5 helps a little on its own, map 17 is perfect.
    matrix[:, 5] = (0.5 + 0.02 * mos + 0.2 * rng.standard_normal(pairs)).astype(np.float32)
    taps = ["conv1"] * 30 + ["conv2"] * 30
    return MapScores(matrix, taps, list(range(30)) * 2, "ssim", "alexnet"), mos


@pytest.mark.parametrize("criterion", ["plcc", "srocc"])
def test_planted_map_is_selected_first(criterion):
    scores, mos = _planted()
    sel = forward_select(scores, mos, higher_is_better=True, criterion=criterion)
    assert sel.maps[0] == 17
    assert sel.taps[0] == "conv1" and sel.channels[0] == 17
    assert sel.path["criterion"].iloc[0] == pytest.approx(1.0, abs=1e-6)
    # Nothing beats a perfect map: selection stops after it.
    assert len(sel.maps) == 1
    assert sel.baseline["criterion"] < 0.9


def test_dmos_orientation():
    scores, mos = _planted()
    sel = forward_select(scores, 10 - mos, higher_is_better=False, criterion="srocc")
    assert sel.maps[0] == 17 and sel.path["criterion"].iloc[0] == pytest.approx(1.0)


def test_running_sums_match_a_direct_search():
    """Screening off: every step's choice equals the brute-force argmax of SROCC of the mean."""
    rng = np.random.default_rng(1)
    pairs, maps = 80, 25
    quality = rng.standard_normal(pairs)
    matrix = (quality[:, None] * rng.uniform(0, 1, maps) + rng.standard_normal((pairs, maps))).astype(np.float32)
    scores = MapScores(matrix, ["t"] * maps, list(range(maps)), "ssim")
    sel = forward_select(scores, quality, higher_is_better=True, criterion="srocc", screen=None, max_maps=6, tol=-1)
    chosen: list[int] = []
    for _ in range(6):
        values = {j: srocc(matrix[:, [*chosen, j]].mean(1), quality) for j in range(maps) if j not in chosen}
        chosen.append(max(values, key=values.get))
    assert sel.maps == chosen
    # The criterion rises along the path until the stopping rule would stop it.
    assert len(sel.path) == 6


def test_stops_when_no_map_helps_and_respects_the_cap():
    scores, mos = _planted()
    sel = forward_select(scores, mos, higher_is_better=True, criterion="srocc", max_maps=3, tol=-1.0)
    assert len(sel.maps) == 3
    with pytest.raises(Exception, match="criterion must be 'plcc'"):
        forward_select(scores, mos, higher_is_better=True, criterion="krocc")
    with pytest.raises(Exception, match="pass higher_is_better"):
        forward_select(scores, mos)


def test_cross_validation_by_reference(tmp_path):
    db = load_database("tid2013", make_tid(tmp_path, refs=4, types=2, levels=3))
    rng = np.random.default_rng(0)
    matrix = rng.uniform(0, 1, (len(db), 20)).astype(np.float32)
    matrix[:, 3] = (db.table["score"].to_numpy() / 10).astype(np.float32)
    scores = MapScores(matrix, ["t"] * 20, list(range(20)), "ssim")
    cv = cross_validate(scores, db, folds=2, criterion="srocc")
    assert len(cv) == 2 and (cv["test_refs"] == 2).all()
    assert (cv["test_srocc"] > 0.99).all()
    assert (cv["test_srocc"] >= cv["all_maps_test_srocc"]).all()


@pytest.fixture(scope="module")
def tid_db(tmp_path_factory):
    return load_database("tid2013", make_tid(tmp_path_factory.mktemp("tid"), refs=3, types=2, levels=3))


def test_map_scores_end_to_end_and_saved_metric(tid_db, tmp_path):
    with pytest.warns(RandomWeightsWarning):
        net = create_backbone("alexnet", weights=None)
    assert default_taps(net) == ["relu1", "relu2", "relu3", "relu4", "relu5"]
    ms = map_scores(tid_db, net, taps=["relu1", "relu2"], resize=64, batch_size=4)
    assert ms.matrix.shape == (len(tid_db), 64 + 192)
    assert ms.matrix.max() <= 1.0 + 1e-5
    ms.save(tmp_path / "maps.npz")
    again = MapScores.load(tmp_path / "maps.npz")
    np.testing.assert_array_equal(again.matrix, ms.matrix)
    assert again.taps == ms.taps

    sel = forward_select(ms, tid_db, criterion="srocc", max_maps=4)
    path = sel.save(tmp_path / "sel.json")
    data = load_selection(path)
    assert sum(len(v) for v in data["maps"].values()) == len(sel.maps)

    # The saved metric reproduces the selected pooled score: 1 - mean SSIM over the selected maps.
    from percept.cli import load_image

    pipe = selection_pipeline(path, weights=None)
    pipe.backbone.load_state_dict(net.state_dict())
    ref = torch.nn.functional.interpolate(load_image(tid_db.table["ref"][0])[None], size=64, mode="bilinear",
                                          antialias=True).clamp(0, 1)  # fmt: skip
    dist = torch.nn.functional.interpolate(load_image(tid_db.table["dist"][0])[None], size=64, mode="bilinear",
                                           antialias=True).clamp(0, 1)  # fmt: skip
    with torch.no_grad():
        d = pipe(ref, dist)
    want = 1 - ms.matrix[0, sel.maps].mean()
    assert float(d) == pytest.approx(float(want), abs=1e-4)

    # ... and loads through PerceptualLoss as the built-in preset "map-selection", differentiable.
    loss = PerceptualLoss("map-selection", weights=None, selection=str(path))
    loss.pipeline.backbone.load_state_dict(net.state_dict())
    x = dist.clone().requires_grad_(True)
    value = loss(x, ref)
    value.backward()
    assert value.item() == pytest.approx(float(want), abs=1e-4)
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_bad_selection_file(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(Exception, match="is not a map selection"):
        load_selection(tmp_path / "x.json")
    with pytest.raises(Exception, match="does not exist"):
        load_selection(tmp_path / "missing.json")


def test_cli_select(tid_db, tmp_path, capsys):
    code = main(
        ["select", "tid2013", str(tid_db.root), "--backbone", "alexnet", "--weights", "none", "--resize", "64",
         "--taps", "relu1", "--criterion", "srocc", "--folds", "3", "--out", str(tmp_path), "--no-progress"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "all maps" in out and "step" in out and "\nstopped: " in out  # says why the selection stopped
    for name in ("map_scores.npz", "selection.json", "path.csv", "cv.csv", "path.png"):
        assert (tmp_path / name).is_file(), name
    data = load_selection(tmp_path / "selection.json")
    assert data["backbone"] == "alexnet" and data["weights"].startswith("random:") and data["cv"]
    assert data["stopped"] and data["stopped"] in out
    # Random weights are recorded with their seed and checksum: each load makes the same network again.
    assert data["signature"].startswith("alexnet|range=0,1|resize=64|weights=random,seed=")
    pair = torch.rand(2, 1, 3, 32, 32)
    assert selection_pipeline(tmp_path / "selection.json")(*pair).equal(selection_pipeline(data)(*pair))
    assert "signature" in pd.read_csv(tmp_path / "path.csv").columns
