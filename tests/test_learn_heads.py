"""``percept.eval.learn``: the trainer's laws, its files, the ``learned-heads`` preset and ``percept learn``.

The exactness against ``lpips.Trainer`` is in tests/test_learn_oracle.py; every family in
tests/test_learn_matrix.py. Tiny random triplets (32 px) keep each test to a second or two.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from percept import PerceptualLoss, PerceptualMetric
from percept.errors import InputError, SpecError, WeightsError
from percept.eval.datasets.model import TwoAFCDatabase
from percept.eval.learn import (
    HeadsOptions,
    LinearHeads,
    clamp_like_lpips,
    heads_pipeline,
    lpips_learning_rates,
    read_heads,
    train_heads,
)
from percept.eval.learn.features import triplet_features
from percept.eval.learn.heads import make_step_model
from percept.eval.learn.train import heads_distances, prepare_backbone

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")]

SIZE = 32


FAST = dict(weights=None, epochs=1, decay_epochs=1, batch_size=8, size=SIZE, taps=["conv1", "conv2"])


def write_triplets(folder, n: int, size: int = SIZE, seed: int = 0, subset: str = "train/random") -> TwoAFCDatabase:
    """``n`` random triplets (8-bit PNGs) with random judge fractions."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row = {"judge": float(rng.integers(0, 6)) / 5, "subset": subset}
        for key in ("ref", "p0", "p1"):
            path = folder / f"{subset.replace('/', '-')}-{key}{i}.png"
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
            row[key] = str(path)
        rows.append(row)
    return TwoAFCDatabase("random", pd.DataFrame(rows), folder)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("triplets")
    return write_triplets(folder, 16), write_triplets(folder, 8, seed=1, subset="val/random")


@pytest.fixture(scope="module")
def learned(data, tmp_path_factory):
    train, val = data
    result = train_heads(train, "alexnet", val=val, **FAST)
    return result, result.save(tmp_path_factory.mktemp("learned"))


def test_learning_rates_follow_lpips_schedule() -> None:
    rates = lpips_learning_rates(1e-4, 5, 5)
    assert len(rates) == 10 and rates[:6] == [1e-4] * 6  # epoch nepoch + 1 still runs at the base rate
    assert all(a > b for a, b in itertools.pairwise(rates[5:]))
    assert rates[-1] == pytest.approx(2e-5) and lpips_learning_rates(1e-3, 3, 0) == [1e-3] * 3


def test_clamp_touches_heads_and_1x1_convs_only() -> None:
    trunk = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1))
    for p in trunk.parameters():
        nn.init.constant_(p, -1.0)
    heads = LinearHeads([4], [-torch.ones(4)])
    clamp_like_lpips(heads, trunk)
    assert float(heads.weights[0].detach().min()) == 0 and float(trunk[1].weight.detach().min()) == 0
    assert (
        float(trunk[0].weight.detach().max()) == -1 and float(trunk[1].bias.detach().max()) == -1
    )  # 3x3 conv and biases: untouched


def test_a_step_clamps_heads_but_not_the_ranking_net(data) -> None:
    train, _ = data
    options = HeadsOptions(weights=None, size=SIZE, taps=["conv1"], lr=0.5)
    net, _ = prepare_backbone("alexnet", options)
    feats = triplet_features(train, net, ["conv1"], size=SIZE)
    model = make_step_model([64], options)
    with torch.no_grad():
        model.rank.model[0].weight.fill_(-0.1)
    model.step(*heads_distances(model.heads, feats, np.arange(8), "cpu"))
    assert float(model.heads.weights[0].detach().min()) >= 0
    assert (
        float(model.rank.model[0].weight.detach().min()) < 0
    )  # as lpips: the ranking net sits outside the clamped module


def test_pooled_features_give_the_distances_of_maps_without_dropout(data) -> None:
    """Without dropout the head and the spatial mean commute: the (T, C) cache is exact."""
    train, _ = data
    net, _ = prepare_backbone("alexnet", HeadsOptions(weights=None))
    maps = triplet_features(train, net, ["conv1", "conv2"], size=SIZE)
    pooled = triplet_features(train, net, ["conv1", "conv2"], size=SIZE, pooled=True)
    heads = LinearHeads([64, 192], [torch.rand(64), torch.rand(192)], dropout=False)
    index = np.array([5, 1, 9])
    d_maps, d_pooled = heads(maps.batch(index)[0]), heads(pooled.batch(index)[0])
    assert pooled.pooled and not maps.pooled
    torch.testing.assert_close(d_pooled, d_maps, rtol=1e-6, atol=1e-7)


def test_disk_cache_is_float16_close_and_reused(data, tmp_path) -> None:
    train, _ = data
    net, _ = prepare_backbone("alexnet", HeadsOptions(weights=None))
    memory = triplet_features(train, net, ["conv2"], size=SIZE)
    disk = triplet_features(train, net, ["conv2"], size=SIZE, cache=tmp_path)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert disk.d0[0].dtype == np.float16 and (folder / "done.json").exists()
    index = np.array([3, 0, 2])
    torch.testing.assert_close(disk.batch(index)[1][0], memory.batch(index)[1][0], rtol=2e-3, atol=1e-5)
    stamp = (folder / "d0_0.npy").stat().st_mtime_ns
    triplet_features(train, net, ["conv2"], size=SIZE, cache=tmp_path)  # the same set again: read, not recomputed
    assert (folder / "d0_0.npy").stat().st_mtime_ns == stamp


def test_training_is_seeded_non_negative_and_leaves_the_global_rng(data, learned) -> None:
    train, val = data
    result, _ = learned
    state = torch.get_rng_state()
    again = train_heads(train, "alexnet", val=val, **FAST)
    assert torch.equal(torch.get_rng_state(), state)
    for a, b in zip(result.heads, again.heads, strict=True):
        assert torch.equal(a, b) and float(a.min()) >= 0
    assert set(result.scores) == {"before", "after"} and 0 <= result.scores["after"]["all"] <= 1
    assert len(result.losses) == 2 and all(np.isfinite(result.losses))


def test_heads_json_records_provenance(learned) -> None:
    result, file = learned
    record, tensors = read_heads(file)
    assert record["backbone"] == "alexnet" and record["taps"] == ["conv1", "conv2"]
    assert record["weights"]["source"] == "random:0"
    assert (
        record["signature"].startswith("learned-heads(alexnet:conv1,conv2)|") and "random,seed=0" in record["signature"]
    )
    assert record["weights"]["checksum"].startswith("sha256:")
    assert record["data"]["n_train"] == 16 and record["data"]["val_subsets"] == ["val/random"]
    assert record["scores"] == result.scores and record["training"]["epochs"] == 1
    torch.testing.assert_close(tensors["heads.1"], result.heads[1])
    assert any(k.startswith("rank.") for k in tensors)


def test_preset_reloads_as_loss_and_metric(learned) -> None:
    result, file = learned
    x, y = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)
    expected = result.pipeline()(x, y)
    loss = PerceptualLoss("learned-heads", file=str(file), reduction="none")
    torch.testing.assert_close(loss(x, y), expected)
    metric = PerceptualMetric("learned-heads", pipeline_kwargs={"file": str(file)})
    metric.update(x, y)
    torch.testing.assert_close(metric.compute(), expected.mean())


def test_other_weights_are_refused_with_both_checksums(learned, tmp_path) -> None:
    _, file = learned
    recorded = read_heads(file)[0]["weights"]["checksum"]
    torch.manual_seed(123)  # random weights other than those of seed 0, which the heads were learned on
    with pytest.raises(WeightsError, match="learned on alexnet weights") as caught:
        heads_pipeline(file, weights=None)  # other random weights
    assert recorded in str(caught.value) and str(file) in str(caught.value) and "has sha256:" in str(caught.value)
    with pytest.raises(WeightsError, match=recorded):
        PerceptualLoss("learned-heads", file=str(file), weights=None)


def test_a_changed_tensor_file_or_bad_json_is_refused(learned, tmp_path) -> None:
    _, file = learned
    copy = tmp_path / "heads.json"
    copy.write_text(file.read_text())
    (tmp_path / "heads.safetensors").write_bytes(b"x" + (file.parent / "heads.safetensors").read_bytes())
    with pytest.raises(InputError, match="has changed since"):
        read_heads(copy)
    copy.write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="not a learned-heads file"):
        read_heads(copy)
    with pytest.raises(SpecError, match="needs file="):
        PerceptualLoss("learned-heads")


def test_options_are_checked(data) -> None:
    train, _ = data
    with pytest.raises(TypeError, match="epoch"):
        train_heads(train, "alexnet", epoch=2)
    with pytest.raises(InputError, match="batch_size"):
        train_heads(train, "alexnet", batch_size=0)
    with pytest.raises(SpecError, match="init='lpips' needs"):
        train_heads(train, "alexnet", weights=None, init="lpips", taps=["conv1"])


def test_tuned_trunk_is_saved_and_reloaded(data, tmp_path) -> None:
    train, _ = data
    options = dict(FAST, taps=["conv1"], epochs=1, decay_epochs=0, lr=1e-2)
    before = prepare_backbone("alexnet", HeadsOptions(weights=None))[0].model.features[0].weight.clone()
    result = train_heads(train, "alexnet", tune_trunk=True, **options)
    assert not torch.equal(result.backbone.model.features[0].weight, before)
    file = result.save(tmp_path)
    assert read_heads(file)[0]["weights"]["source"] == "tuned"
    x, y = torch.rand(1, 3, SIZE, SIZE), torch.rand(1, 3, SIZE, SIZE)
    torch.testing.assert_close(heads_pipeline(file)(x, y), result.pipeline()(x, y))


def test_percept_learn_end_to_end_on_a_synthetic_set(tmp_path, capsys) -> None:
    from percept.cli import main
    from percept.eval.datasets.synthetic import PlantedObserver, make_2afc, make_jnd
    from percept.eval.learn import seeded_backbone

    observer = PlantedObserver(seeded_backbone("alexnet", 0), ["conv1", "conv2"], seed=0)
    path = make_2afc(tmp_path / "set", observer, n_train=24, n_val=12, size=SIZE)
    make_jnd(tmp_path / "set", observer, n=12, size=SIZE)  # jnd/ beside 2afc/: its mAP is reported too
    out = tmp_path / "learned"
    code = main(["learn", "bapps", str(path), "--backbone", "alexnet", "--taps", "conv1,conv2", "--weights", "none",
                 "--epochs", "1", "--decay-epochs", "1", "--batch-size", "8", "--size", str(SIZE), "--out", str(out),
                 "--no-progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr()
    assert "val/synthetic" in printed.out and "learned-heads" in printed.err
    record, _ = read_heads(out / "heads.json")
    assert record["data"]["train_subsets"] == ["train/synthetic"] and record["data"]["n_val"] == 12
    assert 0.0 <= record["scores"]["jnd_map"]["val/synthetic"] <= 1.0 and "jnd_map" in printed.out
    metric = PerceptualLoss("learned-heads", file=str(out / "heads.json"), reduction="none")
    assert metric(torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)).shape == (2,)
    assert main(["learn", "bapps", str(path), "--backbone", "alexnet", "--train-subsets", "nope/*",
                 "--out", str(out)]) == 2  # fmt: skip
    assert "no subset" in capsys.readouterr().err


def test_toolkit_commands_take_a_heads_file(learned, tmp_path, capsys) -> None:
    """sweep (--baselines FILE, --backbones FILE), select and visualize (--backbone FILE) run on the learned metric or
    on the network it was learned on, with the recorded weights."""
    from _eval_fakes import make_tid

    from percept.backbones.weights import state_dict_checksum
    from percept.cli import main
    from percept.eval.datasets import load_database
    from percept.eval.sweep import build_backbone
    from percept.eval.sweep.tables import baseline_scores

    result, file = learned
    net = build_backbone(str(file))
    assert state_dict_checksum(net.model) == result.weights["checksum"]
    with pytest.raises(WeightsError, match="learned on alexnet weights"):
        build_backbone(str(file), weights="random:1")
    db = load_database("tid2013", make_tid(tmp_path / "tid", refs=2, types=1, levels=2, size=(SIZE, SIZE)))
    scores = baseline_scores(db, [str(file)])
    x, y = db.load_pair(0)
    expected = float(result.pipeline()(x[None], y[None]))
    assert float(scores["distance"].iloc[0]) == pytest.approx(expected, rel=1e-5)
    out = tmp_path / "map.png"
    assert main(["visualize", str(file), "conv1", "3", "--steps", "2", "--size", str(SIZE), "--out", str(out)]) == 0
    assert out.exists()
