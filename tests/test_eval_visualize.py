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
    """The k strongest responses, one per image, strongest first; each patch is cut from its image around
    the position of the channel's peak response."""
    folder = make_tid(tmp_path / "db", refs=3, types=1, levels=2) / "distorted_images"
    patches, peaks, files = top_patches(alexnet, "relu1", 7, folder, k=4, resize=80)

    # The expectation, computed here from the images alone: each file's peak response of channel 7.
    responses = {}
    for f in sorted(folder.iterdir()):
        image = _load(f, 80)
        with torch.no_grad():
            responses[str(f)] = (image, alexnet(image[None], ["relu1"])["relu1"][0, 7])
    ranked = sorted(responses, key=lambda f: -float(responses[f][1].max()))
    assert len(responses) == 6 and files == ranked[:4]
    assert peaks == pytest.approx([float(responses[f][1].max()) for f in ranked[:4]], rel=1e-5)

    side = 16  # 4 x relu1's stride of 4
    for patch, f in zip(patches, files, strict=True):
        image, response = responses[f]
        assert patch.shape == (3, side, side)
        windows = image.unfold(1, side, 1).unfold(2, side, 1)  # (3, rows, cols, side, side)
        matches = (windows == patch[:, None, None]).flatten(3).all(-1).all(0).nonzero().tolist()
        assert matches, f"the patch of {f} is not a crop of that image"
        row, col = divmod(int(response.argmax()), response.shape[-1])
        py = int((row + 0.5) * image.shape[-2] / response.shape[-2])
        px = int((col + 0.5) * image.shape[-1] / response.shape[-1])
        assert any(y <= py < y + side and x <= px < x + side for y, x in matches), "the patch misses the peak"

    path = save_grid(patches, tmp_path / "grid.png", nrow=2)
    with Image.open(path) as grid:
        assert grid.size == (2 + 2 * (96 + 2), 2 + 2 * (96 + 2))  # 2 x 2 tiles of 96 px, 2 px padding


def _load(path, side):
    """As top_patches reads an image with resize=side: shorter side scaled to ``side``."""
    from percept.images import load_image

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
