"""Scoring 2AFC and JND sets as the lpips package does (it is the oracle here), and ``percept agreement``
end to end on a synthetic set judged by a planted observer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from percept.cli import main
from percept.errors import InputError
from percept.eval.agreement import agreement, distances, load_metric, select_subsets
from percept.eval.datasets import load_database
from percept.eval.datasets.synthetic import PlantedObserver, make_2afc, make_jnd, observer_distance
from percept.eval.stats import jnd_map, two_afc_agreement, voc_average_precision

lpips = pytest.importorskip("lpips")
trainer = pytest.importorskip("lpips.trainer")

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")

TAPS = "relu1,fire3,fire5"
SPEC = f"squeezenet1_1:{TAPS}/unit/l2"


class _Loader:
    """What lpips' scoring functions iterate: ``load_data()`` yielding dicts of batched tensors."""

    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self.batches = batches

    def load_data(self):
        return iter(self.batches)


def _batches(size: int = 7, **columns: np.ndarray) -> list[dict[str, torch.Tensor]]:
    n = len(next(iter(columns.values())))
    return [{k: torch.from_numpy(v[s : s + size]) for k, v in columns.items()} for s in range(0, n, size)]


def _cases(seed: int, n: int = 60):
    """Distances with ties (rounded) and judgements as fractions of 3 or 5 people."""
    rng = np.random.default_rng(seed)
    d0 = np.round(rng.random(n), 1 if seed % 2 else 3)
    d1 = np.round(rng.random(n), 1 if seed % 2 else 3)
    d1[:5] = d0[:5]  # exact ties
    fraction = rng.integers(0, 6, n) / 5.0 if seed % 3 else rng.integers(0, 4, n) / 3.0
    return d0, d1, fraction


@pytest.mark.parametrize("seed", range(6))
def test_two_afc_agreement_equals_lpips(seed):
    d0, d1, judge = _cases(seed)
    # lpips calls func(ref, p0) and func(ref, p1): the fake metric returns the distance its second input carries
    loader = _Loader(_batches(ref=np.zeros(len(d0)), p0=d0, p1=d1, judge=judge))
    expected, _ = trainer.score_2afc_dataset(loader, lambda ref, p: p, name="oracle")
    assert abs(two_afc_agreement(d0, d1, judge) - expected) <= 1e-12
    assert two_afc_agreement([0.3], [0.3], [0.9]) == 0.5  # a tie is half right, whatever people said


@pytest.mark.parametrize("seed", range(6))
def test_jnd_map_equals_lpips(seed):
    d, _, same = _cases(seed)
    same[0] = max(same[0], 1 / 3)  # at least one pair judged the same
    loader = _Loader(_batches(p0=np.zeros(len(d)), p1=d, same=same))
    expected, _ = trainer.score_jnd_dataset(loader, lambda p0, p1: p1, name="oracle")
    assert abs(jnd_map(d, same) - expected) <= 1e-12


@pytest.mark.parametrize("seed", range(4))
def test_voc_average_precision_equals_lpips(seed):
    rng = np.random.default_rng(seed)
    recall = np.sort(np.round(rng.random(40), 1))  # repeated recalls, as cumulative sums give
    precision = rng.random(40)
    assert abs(voc_average_precision(recall, precision) - lpips.voc_ap(recall, precision)) <= 1e-12


def test_jnd_map_refuses_what_has_no_score():
    assert jnd_map([0.1, 0.5, 0.2], [1.0, 0.0, 1.0]) == 1.0
    with pytest.raises(InputError, match="nobody judged any pair the same"):
        jnd_map([0.1, 0.2], [0.0, 0.0])
    with pytest.raises(InputError, match="NaN or infinite"):
        jnd_map([0.1, float("nan")], [1.0, 0.0])
    with pytest.raises(InputError, match=r"fractions in \[0, 1\]"):
        jnd_map([0.1, 0.2], [1.5, 0.0])
    with pytest.raises(InputError, match="one non-zero length"):
        jnd_map([0.1], [1.0, 0.0])


# -- agreement on a synthetic set ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def observer():
    return PlantedObserver(f"squeezenet1_1:{TAPS}", seed=0)


@pytest.fixture(scope="module")
def sets(tmp_path_factory, observer):
    root = tmp_path_factory.mktemp("synthetic")
    make_2afc(root, observer, n_train=12, n_val=10, size=32)
    make_jnd(root, observer, n=16, size=32)
    return root


def _lpips_loader(db, keys) -> _Loader:
    """The set's images and judgements, batched as lpips' data loaders give them."""
    from percept.images import load_image

    batches = []
    for start in range(0, len(db), 5):
        rows = db.table.iloc[start : start + 5]
        batch = {k: torch.stack([load_image(p) for p in rows[k]]) for k in keys if k in db.table}
        value = "judge" if "judge" in db.table else "same"
        batch[value] = torch.tensor(rows[value].to_numpy())
        batches.append(batch)
    return _Loader(batches)


def test_agreement_per_subset_equals_lpips_scoring(sets):
    db = load_database("bapps", sets)
    metric = load_metric(SPEC, weights="random:0")
    table = agreement(db, metric, batch_size=4)
    assert table["subset"].tolist() == ["train/synthetic", "val/synthetic", "mean"]
    assert table["n"].tolist() == [12, 10, 22]
    for subset in ("train/synthetic", "val/synthetic"):
        part = select_subsets(db, [subset])
        expected, _ = trainer.score_2afc_dataset(_lpips_loader(part, ("ref", "p0", "p1")), metric, name=subset)
        row = table[table["subset"] == subset].iloc[0]
        assert abs(row["2afc"] - expected) <= 1e-12
        judge = part.table["judge"].to_numpy()
        assert row["human"] == pytest.approx(np.mean(judge**2 + (1 - judge) ** 2))
    assert table["2afc"].iloc[-1] == pytest.approx(table["2afc"].iloc[:-1].mean())

    jnd = load_database("bapps-jnd", sets)
    scores = agreement(jnd, metric, subsets=["val/*"])
    expected, _ = trainer.score_jnd_dataset(_lpips_loader(jnd, ("p0", "p1")), metric, name="jnd")
    assert scores.columns.tolist() == ["subset", "n", "jnd_map"]
    assert abs(scores["jnd_map"].iloc[0] - expected) <= 1e-12


def test_the_observer_scores_its_own_ceiling(sets, observer):
    """The hidden observer agrees with its simulated people as well as they agree with each other, and a
    metric weighing every channel alike does worse on the same set."""
    db = load_database("bapps", sets)
    own = agreement(db, observer_distance(observer)).set_index("subset")
    uniform = agreement(db, SPEC, weights="random:0").set_index("subset")
    assert own.loc["mean", "2afc"] > uniform.loc["mean", "2afc"]
    assert own.loc["mean", "2afc"] == pytest.approx(own.loc["mean", "human"], abs=0.1)


def test_distances_keep_a_module_in_training_mode_and_check_the_metric(sets):
    db = select_subsets(load_database("bapps", sets), ["val/*"])
    metric = load_metric(SPEC, weights="random:0").train()
    d = distances(db, metric, batch_size=3)
    assert d.shape == (10, 2) and (d >= 0).all() and metric.training
    with pytest.raises(InputError, match=r"returned \(1,\) for a batch of 3 pairs"):
        distances(db, lambda x, y: torch.zeros(1), batch_size=3)
    with pytest.raises(InputError, match="no subset of bapps matches 'test/\\*'"):
        select_subsets(db, ["test/*"])
    with pytest.raises(InputError, match="file= and other build options apply to a spec string"):
        load_metric(metric, file="heads.json")


def test_agreement_refuses_an_iqa_database(tmp_path):
    from _eval_fakes import make_tid

    db = load_database("tid2013", make_tid(tmp_path, refs=1, types=1, levels=2))
    with pytest.raises(InputError, match="agreement scores the 2AFC and JND sets"):
        agreement(db, SPEC, weights=None)


def test_command_scores_a_channel_weights_file(sets, observer, tmp_path, capsys):
    """``percept agreement`` end to end: --file reaches the preset, the table and --out CSV agree, and the
    observer's own channel weights loaded as a metric score as the observer does."""
    weights = {t: observer.channel_weights[t].tolist() for t in observer.taps}
    file = tmp_path / "observer.json"
    file.write_text(json.dumps({"format": "percept-channel-weights/1", "backbone": "squeezenet1_1",
                                "weights_source": "random:0", "weights": weights}))  # fmt: skip
    out = tmp_path / "scores.csv"
    code = main(["agreement", "bapps", str(sets), "channel-weights", "--file", str(file), "--device", "cpu",
                 "--no-progress", "--out", str(out)])  # fmt: skip
    printed, err = capsys.readouterr()
    assert code == 0, err
    written = pd.read_csv(out)
    assert written["subset"].tolist() == ["train/synthetic", "val/synthetic", "mean"]
    assert "2AFC agreement of channel-weights" in printed and "val/synthetic" in printed
    own = agreement(load_database("bapps", sets), observer_distance(observer))
    np.testing.assert_allclose(written["2afc"], own["2afc"], atol=1e-12)


def test_command_faults(sets, tmp_path, capsys):
    image = load_database("bapps", sets).table["ref"].iloc[0]
    base = ["agreement", "bapps", str(sets), SPEC, "--weights", "random:0", "--no-progress"]
    assert main([*base, "--out", image]) == 2
    assert "is one of the input files" in capsys.readouterr().err
    assert main(["agreement", "tid2013", str(sets), SPEC]) == 2
    assert "IQA database" in capsys.readouterr().err
    assert main(["agreement", "nigths", str(sets), SPEC]) == 2
    assert "Did you mean 'nights'" in capsys.readouterr().err
    assert main([*base, "--subsets", "test/*"]) == 2
    assert "its subsets are train/synthetic, val/synthetic" in capsys.readouterr().err
    assert main([*base, "--min-votes", "6"]) == 2
    assert "--min-votes is an option of nights" in capsys.readouterr().err
    assert main(["agreement", "bapps", str(sets), "channel-weights", "--file", str(tmp_path / "no.json")]) == 2
    assert "no.json" in capsys.readouterr().err
