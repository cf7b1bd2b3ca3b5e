"""The research toolkit over the whole catalogue: one configuration of every family `percept list backbones`
shows, crossed with the sweep (every tap, every measure), select, finetune and visualize.

For each family, random weights are saved to a file (the full network of the source library, as a user's own
checkpoint would be) and passed by path to the toolkit and to ``PerceptualLoss``. The sweep's value at every
tap and for every measure must equal the library's number for the spec that defines the measure:

=========  ===================  =========================================
measure    spec readout/dist.   sweep value from the library's value v
=========  ===================  =========================================
flat-l2    raw/l2               sqrt(v * h * w)   (h, w: the tap's size)
mse        raw/mse              v
unit-l2    unit/l2              v
cosine     raw/cosine           v
ssim       raw/ssim             v
meanstd    meanstd/l2           sqrt(v)
gram       gram/l2              sqrt(v)
=========  ===================  =========================================

select and finetune must agree with the sweep (a tap's per-map SSIM averaged is the sweep's ``ssim``; its
per-channel errors summed are ``unit-l2``), and the metrics they save must reproduce their matrices.
The stlpips plugin's backbone runs through the same checks in plugins/percept-stlpips/tests.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _eval_fakes import make_tid

from percept import PerceptualLoss
from percept.eval.datasets import load_database
from percept.eval.finetune import channel_errors, finetune, finetuned_pipeline
from percept.eval.select import default_taps, forward_select, map_scores, selection_pipeline
from percept.eval.sweep import INPUT_TAP, build_backbone, iterate_chunks, make_chunks, run_sweep, sweep_taps
from percept.eval.visualize import activation_maximization, top_patches

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")]

# (backbone, image side): one configuration per family of the catalogue; sides as small as the taps allow.
FAMILIES = [
    ("alexnet", 64),  # AlexNet
    ("vgg11", 32),  # VGG
    ("squeezenet1_1", 48),  # SqueezeNet
    ("resnet18", 32),  # ResNet / ResNeXt / WideResNet (one code path)
    ("densenet121", 48),
    ("googlenet", 32),
    ("inception_v3", 80),
    ("mobilenet_v2", 32),
    ("mobilenet_v3_small", 32),
    ("mnasnet0_5", 32),
    ("shufflenet_v2_x0_5", 32),
    ("efficientnet_b0", 32),
    ("efficientnet_v2_s", 32),
    ("regnet_x_400mf", 32),
    ("convnext_tiny", 32),
    ("vit_b_32", 64),
    ("swin_t", 64),
    ("swin_v2_t", 64),
    ("maxvit_t", 32),  # runs at 224 only: network_resize / resize=True
    ("fcn_resnet50", 32),
    ("deeplabv3_mobilenet_v3_large", 32),
    ("lraspp_mobilenet_v3_large", 32),
    ("timm.resnet10t", 32),  # a timm CNN (sequential cut)
    ("timm.vit_tiny_patch16_224", 32),  # a timm ViT (forward_intermediates)
    ("timm.swin_tiny_patch4_window7_224.ms_in1k", 64),  # timm Swin (channels-last maps)
    ("timm.eva02_tiny_patch14_224.mim_in22k", 28),  # timm EVA (rotary embedding)
    ("pixel", 32),
    ("gaussian_pyramid", 32),
    ("laplacian_pyramid", 32),
    ("lab", 32),
    ("ycbcr", 32),
]
KORNIA = {"pixel", "gaussian_pyramid", "laplacian_pyramid", "lab", "ycbcr"}

# measure -> (readout, distance, sweep value from the library's value v and the tap's h * w)
MEASURES = {
    "flat-l2": ("raw", "l2", lambda v, hw: (v * hw).sqrt()),
    "mse": ("raw", "mse", lambda v, hw: v),
    "unit-l2": ("unit", "l2", lambda v, hw: v),
    "cosine": ("raw", "cosine", lambda v, hw: v),
    "ssim": ("raw", "ssim", lambda v, hw: v),
    "meanstd": ("meanstd", "l2", lambda v, hw: v.sqrt()),
    "gram": ("gram", "l2", lambda v, hw: v.sqrt()),
}


def weight_file(name: str, folder) -> str:
    """Random weights of the whole network of the source library, saved as a user's checkpoint would be."""
    if name in KORNIA:
        return "none"
    torch.manual_seed(0)
    if name.startswith("timm."):
        import timm

        model = timm.create_model(name.split(".")[1], pretrained=False)
    else:
        from percept.backbones.torchvision import build_arch

        model = build_arch(name)
    path = folder / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return str(path)


def _weights_arg(weights: str):
    return None if weights == "none" else weights


@pytest.fixture(scope="module")
def databases(tmp_path_factory):
    made = {}

    def get(side: int):
        if side not in made:
            root = make_tid(tmp_path_factory.mktemp(f"tid{side}"), refs=3, types=1, levels=3, size=(side, side))
            made[side] = load_database("tid2013", root)
        return made[side]

    return get


def _pairs(db):
    """The sweep's own tensors: (distorted (P, 3, H, W), references (P, 3, H, W), rows (P,))."""
    xs, ys, rows = [], [], []
    for _, _, ref, dists, r in iterate_chunks(db, make_chunks(db, 64)):
        xs.append(dists)
        ys.append(ref.expand_as(dists))
        rows.append(r)
    return torch.cat(xs), torch.cat(ys), torch.cat(rows)


@pytest.mark.parametrize(("name", "side"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_toolkit_over_the_catalogue(name, side, databases, tmp_path):
    db = databases(side)
    weights = weight_file(name, tmp_path)
    net = build_backbone(name, weights=_weights_arg(weights), network_resize=True)
    options = {"resize": True} if net.resize else {}

    # -- sweep: every tap, every measure, one row per pair x tap x measure ---------------------------------------
    result = run_sweep(db, [name], measures=list(MEASURES), weights=_weights_arg(weights), baselines=(), plots=False,
                       network_resize=True)  # fmt: skip
    scores = result.scores
    taps = sweep_taps(net)
    stages = [t for t in taps if t.name != INPUT_TAP]
    assert len(stages) == len(net.module_paths)
    plain = scores[~scores["tap"].str.startswith("cat:")]
    assert len(plain) == len(db) * len(taps) * len(MEASURES)
    assert plain.groupby(["tap", "measure"]).size().eq(len(db)).all()
    assert np.isfinite(plain["distance"]).all()
    assert set(plain["depth"]) == set(range(len(taps)))
    canonical = {net.module_paths[net.tap_info(t).index] for t in net.canonical_taps}
    assert set(plain.loc[plain["canonical"], "module"]) == canonical
    assert len(result.correlations) == len(scores.groupby(["tap", "measure"]))

    # -- each value equals PerceptualLoss on the same pair ---------------------------------------------------------
    x, y, rows = _pairs(db)
    modules = [t.module for t in stages]
    with torch.no_grad():
        sizes = {k: v.shape[-2] * v.shape[-1] for k, v in net.iter_taps(x[:1], modules)}
    for measure, (readout, distance, to_sweep) in MEASURES.items():
        loss = PerceptualLoss(f"{name}:{','.join(modules)}/{readout}/{distance}", weights=_weights_arg(weights),
                              reduction="none", **options)  # fmt: skip
        with torch.no_grad():
            per_tap = loss.pipeline.tap_distances(x, y)
        got = plain[plain["measure"] == measure].set_index(["module", "pair"])["distance"]
        for tap in stages:
            want = to_sweep(per_tap[tap.module].double(), sizes[tap.module])
            swept = torch.tensor(got.loc[[(tap.module, int(r)) for r in rows]].to_numpy())
            # SSIM of feature maps subtracts squared local means from local second moments (cancellation in
            # float32): the backbone's last-bit differences between a batch of 3 and one of 18 grow to ~3e-5.
            rtol = 1e-4 if measure == "ssim" else 1e-5
            torch.testing.assert_close(
                swept, want, rtol=rtol, atol=1e-6 * max(1.0, float(want.abs().max())),
                msg=lambda m, t=tap, ms=measure: f"{name} tap {t.name} ({t.module}) measure {ms}: {m}",
            )  # fmt: skip

    # -- select: per-map SSIM; a tap's maps averaged are the sweep's ssim; the saved selection reproduces them ------
    selected_taps = default_taps(net)
    ms = map_scores(db, name, taps=selected_taps, weights=_weights_arg(weights), network_resize=True)
    channels = [net.tap_info(t).channels for t in selected_taps]
    assert ms.matrix.shape == (len(db), sum(channels)) and np.isfinite(ms.matrix).all()
    ssim_rows = plain[plain["measure"] == "ssim"].set_index(["module", "pair"])["distance"]
    start = 0
    for tap, c in zip(selected_taps, channels, strict=True):
        module = net.module_paths[net.tap_info(tap).index]
        block = 1 - ms.matrix[:, start : start + c].astype(np.float64).mean(1)
        np.testing.assert_allclose(block, ssim_rows.loc[[(module, p) for p in range(len(db))]], rtol=1e-4, atol=1e-5)
        start += c
    selection = forward_select(ms, db, criterion="srocc", max_maps=3, screen=16)
    assert 1 <= len(selection.maps) <= 3
    path = selection.save(tmp_path / "selection.json")
    metric = selection_pipeline(path)
    with torch.no_grad():
        d = metric(x, y).double().numpy()
    np.testing.assert_allclose(d, 1 - ms.matrix[rows.numpy()][:, selection.maps].mean(1), rtol=1e-4, atol=1e-5)

    # -- finetune: per-channel errors summed are the sweep's unit-l2; the saved weights reproduce errors @ w -------
    errors = channel_errors(db, name, weights=_weights_arg(weights), network_resize=True)
    unit_rows = plain[plain["measure"] == "unit-l2"].set_index(["module", "pair"])["distance"]
    start = 0
    for tap in net.canonical_taps:
        c = net.tap_info(tap).channels
        module = net.module_paths[net.tap_info(tap).index]
        summed = errors.matrix[:, start : start + c].astype(np.float64).sum(1)
        np.testing.assert_allclose(summed, unit_rows.loc[[(module, p) for p in range(len(db))]], rtol=1e-4, atol=1e-6)
        start += c
    tuned = finetune(errors, db, epochs=3, patience=3)
    saved = tuned.save(tmp_path / "channel_weights.json")
    w = np.concatenate([tuned.weights[t] for t in dict.fromkeys(errors.taps)])
    with torch.no_grad():
        d = finetuned_pipeline(saved)(x, y).double().numpy()
    np.testing.assert_allclose(d, errors.matrix[rows.numpy()].astype(np.float64) @ w, rtol=1e-4, atol=1e-6)

    # -- visualize: activation maximisation and top patches of the deepest canonical tap -------------------------
    deepest = net.canonical_taps[-1]
    image = activation_maximization(net, deepest, 0, size=max(side, 32), steps=2)
    assert image.shape == (3, max(side, 32), max(side, 32)) and math.isfinite(float(image.sum()))
    assert float(image.min()) >= 0 and float(image.max()) <= 1
    folder = db.root / "reference_images"
    patches, peaks, files = top_patches(net, deepest, 0, folder, k=2)
    assert len(patches) == len(peaks) == len(files) == 2 and all(math.isfinite(p) for p in peaks)


def test_seed_scale_study_in_one_command(tmp_path, capsys):
    """`percept sweep --backbones @seed46`: 46 configurations, one figure coloured by group, one tidy table."""
    import pandas as pd

    from percept.cli import main
    from percept.eval.configs import SEED46

    root = make_tid(tmp_path / "db", refs=2, types=1, levels=3, size=(80, 80))
    out = tmp_path / "study"
    code = main(["sweep", "tid2013", str(root), "--backbones", "@seed46", "--weights", "none", "--baselines", "psnr",
                 "--group-by", "architecture", "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    table = pd.read_csv(out / "correlations.csv")
    nets = table[table["backbone"] != "baseline"]
    assert nets["backbone"].nunique() == len(SEED46) == 46
    assert set(nets["architecture"]) == {c.architecture for c in SEED46}
    assert set(nets["training"]) == {c.training for c in SEED46}
    assert nets["relative_depth"].between(0, 1).all()
    assert (nets.groupby("backbone")["relative_depth"].agg(["min", "max"]).values == [0, 1]).all()
    assert (out / "study_flat-l2_by_architecture.png").stat().st_size > 10_000
    scores = pd.read_csv(out / "scores.csv")
    plain = scores[(scores["backbone"] != "baseline") & ~scores["tap"].str.startswith("cat:")]
    assert plain.groupby("backbone")["pair"].count().min() >= 6  # every configuration scored every pair
