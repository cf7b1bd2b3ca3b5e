"""Channel-relevance fine-tuning: a planted relevant channel, reference-disjoint splits, the saved metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _eval_fakes import make_tid

from percept import RandomWeightsWarning, create_backbone
from percept.eval.datasets import load_database
from percept.eval.finetune import channel_errors, finetune, finetuned_pipeline, split_references
from percept.eval.select import MapScores

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return load_database("tid2013", make_tid(tmp_path_factory.mktemp("tid"), refs=6, types=2, levels=3))


def test_splits_are_disjoint_by_reference(db):
    splits = split_references(db, seed=1)
    assert sorted(r for refs in splits.values() for r in refs) == sorted(db.references)
    assert all(splits.values())
    assert not set(splits["train"]) & set(splits["test"])


@pytest.mark.parametrize("loss", ["plcc", "rank"])
def test_planted_channel_gets_the_weight(db, loss):
    rng = np.random.default_rng(0)
    badness = -db.quality
    matrix = rng.uniform(0, 5, (len(db), 12)).astype(np.float32)  # loud irrelevant channels
    matrix[:, 4] = (0.1 * (badness - badness.min()) + 0.01 * rng.random(len(db))).astype(np.float32)
    errors = MapScores(matrix, ["a"] * 6 + ["b"] * 6, list(range(6)) * 2, "unit-l2", "alexnet")
    result = finetune(errors, db, loss=loss, epochs=300)
    test = result.report["test"]
    w = np.concatenate([result.weights["a"], result.weights["b"]])
    assert (w >= 0).all()
    if loss == "plcc":
        assert test["srocc_after"] > 0.9 > test["srocc_before"]
        assert int(np.argmax(w * matrix.mean(0))) == 4
    else:  # 24 training pairs against 11 noise channels: the ranking loss helps, less decisively
        assert test["srocc_after"] > test["srocc_before"] + 0.2


def test_finetuned_metric_reproduces_the_fitted_distance(db, tmp_path):
    with pytest.warns(RandomWeightsWarning):
        net = create_backbone("alexnet", weights=None)
    errors = channel_errors(db, net, taps=["relu1"], weights=None, resize=64, batch_size=6)
    assert errors.matrix.shape == (len(db), 64)
    result = finetune(errors, db, epochs=20)
    path = result.save(tmp_path / "w.json")
    import json

    from percept.backbones.weights import state_dict_checksum

    # The file records the random weights' seed, their checksum and the signature, and reloads that network.
    saved = json.loads(path.read_text())
    assert saved["weights_source"] == f"random:{net.random_seed}" and saved["signature"] == errors.signature
    assert saved["signature"].startswith("alexnet|range=0,1|resize=64|weights=random,seed=")
    assert saved["weights_checksum"] == state_dict_checksum(net.model)
    pipe = finetuned_pipeline(path)
    assert state_dict_checksum(pipe.backbone.model) == saved["weights_checksum"]
    pipe.backbone.load_state_dict(net.state_dict())
    from percept.cli import load_image
    from percept.images import resize_image

    ref = resize_image(load_image(db.table["ref"][0]), 64)[None]
    dist = resize_image(load_image(db.table["dist"][0]), 64)[None]
    with torch.no_grad():
        d = float(pipe(ref, dist))
    assert d == pytest.approx(float(errors.matrix[0] @ result.weights["relu1"]), rel=1e-3)

    # The built-in preset "channel-weights" loads the same file by name, with the weights it recorded
    # (here random: the warning says so), in the loss and in the metric.
    from percept import PerceptualLoss, PerceptualMetric

    with pytest.warns(RandomWeightsWarning):
        loss = PerceptualLoss("channel-weights", file=str(path))
    loss.pipeline.backbone.load_state_dict(net.state_dict())
    x = dist.clone().requires_grad_(True)
    value = loss(x, ref)
    value.backward()
    assert value.item() == pytest.approx(d, rel=1e-6) and torch.isfinite(x.grad).all()
    with pytest.warns(RandomWeightsWarning):
        metric = PerceptualMetric("channel-weights", pipeline_kwargs={"file": str(path)})
    metric.pipeline.backbone.load_state_dict(net.state_dict())
    metric.update(dist, ref)
    assert float(metric.compute()) == pytest.approx(d, rel=1e-6)


def test_toolkit_presets_are_built_in(tmp_path):
    from percept import list_presets
    from percept.errors import SpecError
    from percept.pipeline import build_pipeline

    assert {"map-selection", "channel-weights"} <= set(list_presets())
    with pytest.raises(SpecError, match="needs file="):
        build_pipeline("channel-weights")
    with pytest.raises(SpecError, match="needs selection="):
        build_pipeline("map-selection")
    with pytest.raises(TypeError, match="unexpected options"):
        build_pipeline("channel-weights", file=str(tmp_path / "w.json"), lin_weights="x")


def test_cli_finetune(db, tmp_path, capsys):
    from percept.cli import main

    code = main(
        ["finetune", "tid2013", str(db.root), "--backbone", "alexnet", "--weights", "none", "--resize", "64",
         "--taps", "relu1", "--epochs", "10", "--out", str(tmp_path), "--no-progress"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "srocc_before" in out and "test" in out
    assert (tmp_path / "channel_weights.json").is_file() and (tmp_path / "channel_errors.npz").is_file()
