"""Layer sweep: end to end on random weights, one forward per image, reference reuse, resume, measures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _eval_fakes import count_network_passes, make_tid

from percept import RandomWeightsWarning, create_backbone
from percept.cli import main
from percept.errors import install_hint
from percept.eval.datasets import load_database
from percept.eval.sweep import (
    INPUT_TAP,
    TapScorer,
    make_measure,
    run_sweep,
    ssim_per_map,
    sweep_backbone,
    sweep_taps,
)

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


@pytest.fixture(scope="module")
def tid(tmp_path_factory):
    root = make_tid(tmp_path_factory.mktemp("tid"), refs=3, types=2, levels=3)
    return load_database("tid2013", root)


@pytest.fixture(scope="module")
def alexnet():
    with pytest.warns(RandomWeightsWarning):
        return create_backbone("alexnet", weights=None)


def test_taps_cover_input_and_every_stage(alexnet):
    taps = sweep_taps(alexnet)
    assert taps[0].name == INPUT_TAP and taps[0].depth == 0
    assert [t.module for t in taps[1:]] == alexnet.module_paths
    assert [t.depth for t in taps] == list(range(len(taps)))
    names = {t.name for t in taps}
    assert {"relu1", "pool1", "relu5", "pool5"} <= names
    assert [t.name for t in taps if t.canonical] == ["relu1", "relu2", "relu3", "relu4", "relu5"]


def test_streamed_taps_match_a_direct_forward(alexnet):
    """Distances computed as each stage finishes (before in-place ReLUs run) equal those from tap
    outputs returned by the backbone."""
    taps = sweep_taps(alexnet)
    scorer = TapScorer(alexnet, taps, {"flat-l2": make_measure("flat-l2"), "ssim": make_measure("ssim")})
    ref, dist = torch.rand(1, 3, 70, 80), torch.rand(3, 3, 70, 80)
    scorer.set_reference(ref)
    got = scorer.score(dist)
    modules = [t.module for t in taps[1:]]
    with torch.no_grad():
        fr, fd = alexnet(ref, modules), alexnet(dist, modules)
    for tap in taps[1:]:
        want = (fr[tap.module] - fd[tap.module]).pow(2).flatten(1).sum(1).sqrt()
        torch.testing.assert_close(got[(tap.name, "flat-l2")], want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[(INPUT_TAP, "flat-l2")], (ref - dist).pow(2).flatten(1).sum(1).sqrt())


def test_one_forward_per_chunk_and_per_reference(tid, alexnet, monkeypatch):
    calls = count_network_passes(monkeypatch, alexnet)
    scores = sweep_backbone(tid, alexnet, measures=["flat-l2"], resize=64, batch_size=4)
    # 3 references, 6 distorted images each: chunks of 4 and 2 -> per reference 1 + 2 passes.
    assert calls == [1, 4, 2] * 3
    assert scores["pair"].nunique() == len(tid)


def test_sweep_end_to_end_on_random_weights(tid, tmp_path):
    result = run_sweep(
        tid, ["alexnet"], out_dir=tmp_path, weights=None, measures=["flat-l2", "ssim"], resize=64, batch_size=4,
        baselines=["psnr", "ssim"],
    )  # fmt: skip
    for name in ("pairs.csv", "scores.csv", "correlations.csv", "depth_flat-l2.png", "depth_alexnet.png"):
        assert (tmp_path / name).is_file(), name
    table = pd.read_csv(tmp_path / "correlations.csv")
    np.testing.assert_allclose(table["srocc"], result.correlations["srocc"])
    nets = table[table["backbone"] == "alexnet"]
    n_taps = len(sweep_taps(create_backbone("alexnet", weights=None)))
    assert len(nets[nets["measure"] == "ssim"]) == n_taps
    assert len(nets[nets["tap"].str.startswith("cat:")]) == 5  # cumulative concatenation of the 5 canonical taps
    assert set(table.loc[table["backbone"] == "baseline", "tap"]) == {"psnr", "ssim"}
    assert (table["n"] == len(tid)).all()
    # The scores are a decreasing function of the noise level: pixel distance and PSNR track them.
    row = nets[(nets["tap"] == INPUT_TAP) & (nets["measure"] == "flat-l2")].iloc[0]
    assert row["srocc"] > 0.9
    assert table.loc[table["tap"] == "psnr", "srocc"].iloc[0] > 0.9
    scores = pd.read_csv(tmp_path / "scores.csv", comment="#")  # after its '# signature: ...' lines
    from percept.signature import read_signatures

    # What the numbers depend on: one signature per network and baseline, the network's on its correlations.
    signatures = read_signatures(tmp_path / "scores.csv")
    assert signatures[0].startswith("alexnet|range=0,1|resize=64|weights=random,seed=") and len(signatures) == 3
    assert (table.loc[table["backbone"] == "alexnet", "signature"] == signatures[0]).all()
    assert list(scores.columns) == [
        "database", "backbone", "tap", "module", "depth", "canonical", "measure", "pair", "distance"
    ]  # fmt: skip


def test_resume_reuses_partial_results(tid, alexnet, tmp_path, monkeypatch):
    first = sweep_backbone(tid, alexnet, measures=["mse"], resize=64, batch_size=4, partial_dir=tmp_path)
    chunk_files = sorted(tmp_path.glob("*/c*.csv"))
    assert len(chunk_files) == 6
    chunk_files[-1].unlink()  # as if interrupted before the last chunk
    calls = count_network_passes(monkeypatch, alexnet)
    second = sweep_backbone(tid, alexnet, measures=["mse"], resize=64, batch_size=4, partial_dir=tmp_path)
    assert calls == [1, 2]  # only the missing chunk (with its reference) ran again
    pd.testing.assert_frame_equal(first.reset_index(drop=True), second.reset_index(drop=True), check_exact=False)


def test_measures():
    a, b = torch.rand(1, 4, 12, 12), torch.rand(3, 4, 12, 12)
    torch.testing.assert_close(make_measure("unit/l2")(a, b), make_measure("unit-l2")(a, b), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(make_measure("raw/mse")(a, b), make_measure("mse")(a, b), rtol=1e-4, atol=1e-6)
    for name in ("flat-l2", "mse", "unit-l2", "cosine", "ssim", "meanstd", "gram"):
        d = make_measure(name)(b[:1], b)
        assert d.shape == (3,) and abs(float(d[0])) < 1e-4 and (d[1:] > 0).all(), name
    with pytest.raises(Exception, match="unknown measure 'flat-l3'"):
        make_measure("flat-l3")


def test_ssim_per_map_matches_piq():
    piq = pytest.importorskip("piq")
    x = torch.rand(2, 3, 32, 40)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    want = piq.ssim(x, y, data_range=1.0, downsample=False, reduction="none")
    torch.testing.assert_close(ssim_per_map(x, y).mean(1), want, rtol=1e-4, atol=1e-5)
    assert ssim_per_map(torch.rand(1, 2, 5, 5), torch.rand(2, 2, 5, 5)).shape == (2, 2)  # window shrinks to 5


def test_images_smaller_than_the_taps_need(tid):
    with pytest.raises(Exception, match="smaller than the .* that the taps of alexnet need"):
        sweep_backbone(tid, "alexnet", weights=None, measures=["mse"])  # fake images are 24 x 32


def test_cli_sweep(tid, tmp_path, capsys):
    code = main(
        ["sweep", "tid2013", str(tid.root), "--backbones", "alexnet", "--weights", "none", "--resize", "64",
         "--taps", "input,conv1,conv2", "--baselines", "psnr", "--out", str(tmp_path), "--no-progress"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "tid2013: 18 pairs, 3 references" in out and "psnr" in out
    table = pd.read_csv(tmp_path / "correlations.csv")
    assert set(table["tap"]) >= {"input", "conv1", "conv2"}
    assert np.isfinite(table["srocc"]).all()


def test_2afc_on_bapps_layout(tmp_path):
    from _eval_fakes import make_bapps

    from percept.eval.datasets import read_bapps
    from percept.eval.sweep import evaluate_2afc

    db = read_bapps(make_bapps(tmp_path, n=4))
    # p0 is always the milder distortion and people (judge = 0.1) mostly prefer it: a pixel metric agrees.
    with pytest.warns(RandomWeightsWarning):
        table = evaluate_2afc(db, "alexnet:conv1/raw/mse", weights=None, batch_size=3)
    assert list(table["subset"]) == ["val/traditional", "all"]
    row = table.iloc[-1]
    assert row["n"] == 4 and row["agreement"] == pytest.approx(0.9) and row["human"] == pytest.approx(0.82)


def test_baselines_without_piq_warn_once(tid, monkeypatch):
    import sys

    import percept.eval.sweep as sweep_package

    monkeypatch.setitem(sys.modules, "piq", None)  # `import piq` raises ImportError
    with pytest.warns(UserWarning) as caught:
        frame = sweep_package.baseline_scores(tid, ["psnr", "ssim", "ms-ssim"])
    messages = [str(w.message) for w in caught if "piq" in str(w.message)]
    assert len(messages) == 1, messages  # one warning for the three, not a silent drop
    assert "psnr, ssim, ms-ssim" in messages[0] and install_hint("eval") in messages[0]
    assert frame.empty
