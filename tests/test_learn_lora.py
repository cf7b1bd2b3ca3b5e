"""LoRA tuning of embedding metrics (``percept.eval.learn.embedding``), its file and ``learned-embedding``.

LoRA against ``peft`` on DreamSim's networks is in tests/test_dreamsim.py; here tiny random ViTs at 32 px.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

from percept import PerceptualLoss, PerceptualMetric
from percept.builtin.lora import (
    LoRALinear,
    apply_lora,
    base_checksum,
    build_embedding_metric,
    lora_layers,
    read_embedding,
)
from percept.errors import InputError, SpecError, WeightsError
from percept.eval.learn.embedding import EmbeddingOptions, embedding_options, hinge_loss, train_embedding

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SIZE = 32
MEMBERS = ["timm.vit_tiny_patch16_224:cls"]
FAST = dict(members=MEMBERS, weights=None, size=SIZE, batch_size=8, rank=4, dropout=0.0)


def _images(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_lora_linear_starts_equal_and_adds_the_scaled_low_rank_update():
    base = nn.Linear(6, 9)
    lora = LoRALinear(base, rank=3, alpha=6.0, dropout=0.5).eval()
    x = torch.randn(4, 6)
    assert torch.equal(lora(x), base(x))
    with torch.no_grad():
        lora.lora_B.weight.normal_()
    update = x @ lora.lora_A.weight.t() @ lora.lora_B.weight.t() * (6.0 / 3)
    torch.testing.assert_close(lora(x), base(x) + update)
    assert [n for n, p in lora.named_parameters() if p.requires_grad] == ["lora_A.weight", "lora_B.weight"]
    with pytest.raises(SpecError, match="rank"):
        LoRALinear(base, rank=0)


def test_apply_lora_starts_equal_to_the_frozen_network_and_only_lora_trains():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = build_embedding_metric(MEMBERS, weights=None, seed=0, size=SIZE)
    x, y = _images(seed=1), _images(seed=2)
    before, checksum = metric(x, y), base_checksum(metric)
    paths = apply_lora(metric.backbone, rank=4, alpha=8.0, dropout=0.3)
    assert len(paths) == 12 and all(p.endswith("attn.qkv") for p in paths)
    assert not any(layer.training for layer in lora_layers(metric))  # a frozen network: no dropout at inference
    torch.testing.assert_close(metric(x, y), before, atol=0, rtol=0)
    assert base_checksum(metric) == checksum
    trainable = [n for n, p in metric.named_parameters() if p.requires_grad]
    assert len(trainable) == 24 and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    with pytest.raises(SpecError, match="no linear layer named"):
        apply_lora(nn.Sequential(nn.Linear(2, 2)))


def test_hinge_loss_on_a_hand_checked_example():
    d0, d1 = torch.tensor([0.3, 0.1, 0.5, 0.2]), torch.tensor([0.2, 0.4, 0.5, 0.6])
    judge = torch.tensor([1.0, 1.0, 0.4, 0.5])  # targets +1, +1, -1, -1 (0.5 rounds to 0)
    # margin - (d0 - d1) * t: 0.05 - 0.1, 0.05 + 0.3, 0.05 - 0, 0.05 - 0.4 -> clamped 0, 0.35, 0.05, 0
    torch.testing.assert_close(hinge_loss(d0, d1, judge, 0.05), torch.tensor(0.4 / 4))
    assert hinge_loss(d0, d1, judge, 0.0).item() == pytest.approx(0.3 / 4)


def test_options_are_checked():
    assert embedding_options(None, {}) == EmbeddingOptions()
    assert (EmbeddingOptions().rank, EmbeddingOptions().alpha, EmbeddingOptions().lr) == (16, 8.0, 3e-4)
    with pytest.raises(InputError, match="epochs"):
        embedding_options(None, {"epocs": 2})
    with pytest.raises(InputError, match="batch_size"):
        embedding_options(None, {"batch_size": 0})


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from percept.eval.datasets import load_database
    from percept.eval.datasets.synthetic import PlantedObserver, make_2afc
    from percept.eval.learn.train import db_subsets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        observer = PlantedObserver("alexnet", ["conv1", "conv2"], fraction=0.2, seed=0)
        root = make_2afc(tmp_path_factory.mktemp("set"), observer, n_train=48, n_val=16, size=SIZE, seed=0)
    db = load_database("bapps", root)
    return root, db_subsets(db, "train/*"), db_subsets(db, "val/*")


@pytest.fixture(scope="module")
def trained(synthetic):
    _, train, val = synthetic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train_embedding(train, val=val, epochs=3, lr=3e-3, **FAST)


def test_a_few_steps_improve_agreement(trained, synthetic):
    from percept.eval.learn.embedding import score_2afc

    _, train, _ = synthetic
    losses = trained.losses
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert set(trained.scores) == {"before", "after"} and "val/synthetic" in trained.scores["after"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = build_embedding_metric(MEMBERS, weights=None, seed=0, size=SIZE)
    before = score_2afc(base, train, trained.options)["all"]
    assert score_2afc(trained.pipeline, train, trained.options)["all"] > before
    assert base_checksum(trained.pipeline) == trained.weights["checksum"]  # the base networks did not move


def test_save_and_reload_by_name(trained, tmp_path):
    path = trained.save(tmp_path / "tuned")
    record, tensors = read_embedding(path)
    assert record["members"] == MEMBERS and record["lora"]["rank"] == 4 and len(tensors) == 24
    assert record["weights"]["source"] == "random" and record["weights"]["checksum"].startswith("sha256:")
    assert record["scores"]["after"]["all"] == trained.scores["after"]["all"]
    x, y = _images(seed=3), _images(seed=4)
    with torch.no_grad():
        expected = trained.pipeline(x, y)
        loss = PerceptualLoss("learned-embedding", file=str(path), reduction="none")
        torch.testing.assert_close(loss(x, y), expected, atol=1e-6, rtol=0)
    metric = PerceptualMetric("learned-embedding", file=str(path))
    metric.update(x, y)
    assert float(metric.compute()) == pytest.approx(float(expected.mean()), abs=1e-6)
    changed = json.loads(path.read_text())
    changed["weights"]["seed"] = 1
    path.write_text(json.dumps(changed))
    with pytest.raises(WeightsError, match="learned on base weights"):
        PerceptualLoss("learned-embedding", file=str(path))
    with pytest.raises(InputError, match="learned-embedding file"):
        PerceptualLoss("learned-embedding", file=str(tmp_path / "missing.json"))


def test_percept_learn_method_lora_end_to_end(synthetic, tmp_path, capsys):
    from percept.cli import main

    root, _, _ = synthetic
    out = tmp_path / "lora"
    code = main(["learn", "bapps", str(root), "--method", "lora", "--backbone", MEMBERS[0], "--weights", "none",
                 "--epochs", "1", "--batch-size", "16", "--size", str(SIZE), "--rank", "2", "--lora-dropout", "0",
                 "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr()
    assert "val/synthetic" in printed.out and "learned-embedding" in printed.err
    record, _ = read_embedding(out / "embedding.json")
    assert record["lora"]["rank"] == 2 and record["data"]["n_train"] == 48
    assert "|weights=" in record["signature"] and "|percept=" in record["signature"]
    loss = PerceptualLoss("learned-embedding", file=str(out / "embedding.json"), reduction="none")
    assert loss(_images(seed=5), _images(seed=6)).shape == (2,)
    assert main(["learn", "bapps", str(root), "--method", "lora", "--backbone", MEMBERS[0], "--tune-trunk",
                 "--out", str(out)]) == 2  # fmt: skip
    assert "options of --method heads" in capsys.readouterr().err
