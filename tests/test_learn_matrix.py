"""Issue 23 item 8: heads learned for one configuration of every backbone family beat the uncalibrated metric.

For each family, a synthetic 2AFC set (:func:`percept.eval.datasets.synthetic.make_2afc`, 32 px) is judged by a
hidden observer weighing a planted 10% of the channels of the same network (random weights from seed 0;
:class:`~percept.eval.datasets.synthetic.PlantedObserver`). ``train_heads`` learns heads on its ``train`` split;
the saved ``heads.json`` reloads by name (``PerceptualLoss("learned-heads", file=...)``), and the reloaded metric's
2AFC agreement on the held-out ``val`` triplets beats the uncalibrated ``<backbone>:<taps>/unit/l2`` spec's on the
same network. Features are cached (no dropout: spatial means only), the taps are shallow, and everything runs on
one thread (small operations on an oversubscribed CPU are much faster so), so each family takes seconds.
"""

from __future__ import annotations

import pytest
import torch

import percept
from percept.backbones.weights import state_dict_checksum
from percept.eval.datasets import load_database
from percept.eval.datasets.synthetic import PlantedObserver, make_2afc
from percept.eval.learn import db_subsets, seeded_backbone, train_heads
from percept.eval.learn.features import load_images
from percept.eval.stats import two_afc_agreement

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning"),
]

SIZE, TRAIN, VAL = 32, 150, 100
# (backbone, taps): one configuration per family; shallow taps keep it fast. The ViT's planted channels are
# learned from one block: spread over two blocks, 150 triplets do not pin them down.
FAMILIES = [
    ("alexnet", ["conv1", "conv2"]),  # AlexNet
    ("vgg11", ["conv1", "conv2"]),  # VGG
    ("resnet18", ["stem", "layer1"]),  # ResNet
    ("mobilenet_v2", ["stage1", "stage2"]),  # MobileNet
    ("timm.resnet10t", ["stages_0", "stages_1"]),  # a timm model
    ("timm.vit_tiny_patch16_224", ["stages_1"]),  # a ViT (timm's forward_intermediates)
    ("laplacian_pyramid", ["band0", "band1"]),  # a kornia pyramid
    ("stlpips.alexnet", ["conv1", "conv2"]),  # the stlpips plugin's backbone
]


def agreement(metric, val) -> float:
    with torch.no_grad():
        ref, p0, p1 = (load_images(val.table[k].tolist(), SIZE) for k in ("ref", "p0", "p1"))
        return two_afc_agreement(metric(ref, p0).numpy(), metric(ref, p1).numpy(), val.table["judge"].to_numpy())


@pytest.mark.parametrize(("name", "taps"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_learned_heads_beat_the_uncalibrated_spec(name, taps, tmp_path):
    if name.startswith("stlpips."):
        pytest.importorskip("percept_stlpips", reason="the stlpips plugin (plugins/percept-stlpips) is not installed")
    net = seeded_backbone(name, 0)
    path = make_2afc(tmp_path / "set", PlantedObserver(net, taps, seed=0), n_train=TRAIN, n_val=VAL, size=SIZE)
    db = load_database("bapps", path)
    train, val = db_subsets(db, "train/*"), db_subsets(db, "val/*")
    result = train_heads(train, name, weights=None, seed=0, taps=taps, lpips_scaling=False, size=SIZE,
                         dropout=False, epochs=40, decay_epochs=0, lr=1e-2, val=val)  # fmt: skip
    assert result.weights["checksum"] == state_dict_checksum(net.model)  # the observer's network
    file = result.save(tmp_path / "learned")
    learned = percept.PerceptualLoss("learned-heads", file=str(file), reduction="none")
    baseline = percept.build_pipeline(f"{name}:{','.join(taps)}/unit/l2", weights=None)
    baseline.backbone.model.load_state_dict(net.model.state_dict())
    after, before = agreement(learned, val), agreement(baseline, val)
    assert after == pytest.approx(result.scores["after"]["all"], abs=0.02)  # reloaded = what was learned
    assert after > before, f"{name}: learned {after:.3f} does not beat unit/l2 {before:.3f} on held-out triplets"
