"""The research toolkit over the whole catalogue: one configuration of every family `percept list backbones`
shows, through :func:`percept.eval.contract.check_toolkit` (sweep over every tap with every measure, each value
equal to ``PerceptualLoss`` on the same pair; select; finetune; visualize).

For each family, random weights are saved to a file (the full network of the source library, as a user's own
checkpoint would be) and passed by path to the toolkit and to ``PerceptualLoss``. The stlpips plugin's backbones
run through the same check in plugins/percept-stlpips/tests.
"""

from __future__ import annotations

import pytest
import torch
from _eval_fakes import make_tid

from percept.eval.contract import check_toolkit

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


def weight_file(name: str, folder) -> str | None:
    """Random weights of the whole network of the source library, saved as a user's checkpoint would be."""
    if name in KORNIA:
        return None
    torch.manual_seed(0)
    if name.startswith("timm."):
        import timm

        model = timm.create_model(name.split(".")[1], pretrained=False)
    else:
        from percept.builtin._torchvision import build_arch

        model = build_arch(name)
    path = folder / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.mark.parametrize(("name", "side"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_toolkit_over_the_catalogue(name, side, tmp_path):
    check_toolkit(name, weights=weight_file(name, tmp_path), side=side, folder=tmp_path)


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
    scores = pd.read_csv(out / "scores.csv", comment="#")  # after its '# signature: ...' lines
    plain = scores[(scores["backbone"] != "baseline") & ~scores["tap"].str.startswith("cat:")]
    assert plain.groupby("backbone")["pair"].count().min() >= 6  # every configuration scored every pair
