"""percept's heads trainer against ``lpips.Trainer`` (the lpips package as the oracle).

Same random AlexNet weights in both, the same initial heads and ranking network, the same batches and
the same dropout masks (the global RNG seeded alike before each step; lpips and percept draw the masks of
the five heads of ``d0`` then ``d1`` in the same order and shapes): after k Adam steps the heads and the
ranking network agree within 1e-6. The learned heads, written in LPIPS' file format and loaded into
percept's ``lpips-alex`` arithmetic, give lpips' distance; so does the ``learned-heads`` preset.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
import torch

from percept.eval.datasets.model import TwoAFCDatabase
from percept.eval.learn.features import load_images, triplet_features
from percept.eval.learn.heads import HeadsOptions, lpips_learning_rates, make_step_model
from percept.eval.learn.train import heads_distances, prepare_backbone

lpips = pytest.importorskip("lpips")

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning"),
    pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning"),
]

SIZE, TRIPLETS, BATCH, STEPS = 48, 12, 4, 3


def write_triplets(folder, n: int, size: int, seed: int = 0) -> TwoAFCDatabase:
    """``n`` random triplets as 8-bit PNGs (so that both trainers read the same values) and random judges."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row = {}
        for key in ("ref", "p0", "p1"):
            path = folder / f"{key}{i}.png"
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
            row[key] = str(path)
        rows.append({**row, "judge": float(rng.integers(0, 6)) / 5, "subset": "train/random"})
    return TwoAFCDatabase("random", pd.DataFrame(rows), folder)


def lpips_trainer(percept_net) -> lpips.Trainer:
    """``lpips.Trainer`` in training mode (random heads, trunk frozen) with percept's AlexNet weights copied in."""
    trainer = lpips.Trainer()
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.initialize(model="lpips", net="alex", pnet_rand=True, use_gpu=False, is_train=True, lr=1e-4)
    features = percept_net.model.features.state_dict()
    trunk = trainer.net.net
    trunk.load_state_dict({k: features[k.split(".", 1)[1]] for k in trunk.state_dict()})
    return trainer


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    db = write_triplets(tmp_path_factory.mktemp("triplets"), TRIPLETS, SIZE)
    options = HeadsOptions(weights=None, seed=0, batch_size=BATCH, size=SIZE)
    net, _ = prepare_backbone("alexnet", options)
    return db, net, options


def test_steps_equal_lpips_trainer(setup) -> None:
    db, net, options = setup
    taps = net.canonical_taps
    assert taps == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    feats = triplet_features(db, net, taps, size=SIZE)
    model = make_step_model([net.tap_info(t).channels for t in taps], options)
    trainer = lpips_trainer(net)
    for lin, w in zip(trainer.net.lins, model.heads.weights, strict=True):
        lin.model[1].weight.data.copy_(w.detach())
    trainer.rankLoss.net.load_state_dict(model.rank.state_dict())
    images = {k: load_images(db.table[k].tolist(), SIZE) * 2 - 1 for k in ("ref", "p0", "p1")}
    judge = torch.tensor(db.table["judge"].to_numpy(dtype=np.float32))
    initial = [w.detach().clone() for w in model.heads.weights]
    batches = [np.array([3, 0, 7, 5]), np.array([1, 2, 11, 4]), np.array([9, 6, 8, 10])]
    assert len(batches) == STEPS
    for step, index in enumerate(batches):
        torch.manual_seed(100 + step)  # the same dropout masks in both
        trainer.set_input({k: v[index] for k, v in images.items()} | {"judge": judge[index].view(-1, 1, 1, 1)})
        trainer.optimize_parameters()
        torch.manual_seed(100 + step)
        model.step(*heads_distances(model.heads, feats, index, "cpu"))
        ours, theirs = model.losses[-1], float(trainer.loss_total.detach())
        assert ours == pytest.approx(theirs, abs=1e-6), f"step {step}: loss {ours} vs lpips {theirs}"
    for i, (lin, w) in enumerate(zip(trainer.net.lins, model.heads.weights, strict=True)):
        error = float((lin.model[1].weight - w).detach().abs().max())
        print(f"head {i}: max |difference| {error:.2e}")
        assert error <= 1e-6, f"head {i}: max |difference| {error:.2e} after {STEPS} steps"
        assert float(w.detach().min()) >= 0, "heads are clamped to >= 0 after every step"
    moved = max(float((w.detach() - w0).abs().max()) for w, w0 in zip(model.heads.weights, initial, strict=True))
    assert moved > 1e-5, "the steps changed the heads (clamping and Adam), so the comparison means something"
    ours_rank, theirs_rank = model.rank.state_dict(), trainer.rankLoss.net.state_dict()
    for key, value in theirs_rank.items():
        assert float((ours_rank[key] - value).abs().max()) <= 1e-6, key


def test_learning_rates_equal_lpips_update_learning_rate() -> None:
    trainer = lpips.Trainer()
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.initialize(model="lpips", net="alex", pnet_rand=True, use_gpu=False, is_train=True, lr=3e-4)
        rates = []
        nepoch, nepoch_decay = 3, 4
        for epoch in range(1, nepoch + nepoch_decay + 1):  # lpips' train.py loop
            rates.append(trainer.optimizer_net.param_groups[0]["lr"])
            if epoch > nepoch:
                trainer.update_learning_rate(nepoch_decay)
    assert lpips_learning_rates(3e-4, nepoch, nepoch_decay) == rates  # the same floats, not just close


def test_learned_heads_give_lpips_distance(setup, tmp_path) -> None:
    """Heads learned end to end reload (preset and lpips-alex with lin_weights) and equal lpips' distance."""
    import percept
    from percept.builtin.lpips import create_lpips
    from percept.eval.learn import train_heads

    db, _, _ = setup
    result = train_heads(db, "alexnet", weights=None, seed=0, epochs=1, decay_epochs=1, batch_size=BATCH, size=SIZE)
    file = result.save(tmp_path / "learned")
    reference = lpips.LPIPS(pretrained=False, net="alex", pnet_rand=True, verbose=False)
    features = result.backbone.model.features.state_dict()
    reference.net.load_state_dict({k: features[k.split(".", 1)[1]] for k in reference.net.state_dict()})
    for lin, head in zip(reference.lins, result.heads, strict=True):
        lin.model[1].weight.data.copy_(head.view(1, -1, 1, 1))
    reference.eval()
    lin_file = tmp_path / "alex-learned.pth"
    torch.save({f"lin{i}.model.1.weight": h.view(1, -1, 1, 1) for i, h in enumerate(result.heads)}, lin_file)
    alex = create_lpips("alex", weights=None, lin_weights=lin_file)
    alex.backbone.model.load_state_dict(result.backbone.model.state_dict())
    preset = percept.build_pipeline("learned-heads", file=str(file))
    x, y = torch.rand(3, 3, 64, 64), torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x, y, normalize=True).flatten()
        for name, metric in (("lpips-alex", alex), ("learned-heads", preset), ("pipeline()", result.pipeline())):
            error = float((metric(x, y) - expected).abs().max())
            assert error <= 1e-6 * float(expected.abs().max()) + 1e-7, f"{name}: {error:.2e} from lpips"
