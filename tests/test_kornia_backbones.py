"""Non-deep backbones (kornia): pixel, Gaussian and Laplacian pyramids, Lab, YCbCr, against kornia and
the textbook definitions."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from percept import InputError, WeightsError, build_pipeline, create_backbone, perceptual_distance

kornia = pytest.importorskip("kornia")


def test_pixel_mse_is_the_mean_squared_error():
    x, y = torch.rand(3, 3, 20, 24), torch.rand(3, 3, 20, 24)
    expected = F.mse_loss(x, y, reduction="none").mean(dim=(1, 2, 3))
    torch.testing.assert_close(perceptual_distance(x, y, "pixel"), expected)
    signed = build_pipeline("pixel", input_range=(-1, 1))
    torch.testing.assert_close(signed(x * 2 - 1, y * 2 - 1), expected, rtol=1e-5, atol=1e-6)


def test_gaussian_pyramid_is_kornias():
    bb = create_backbone("gaussian_pyramid")
    x = torch.rand(2, 3, 64, 48)
    ours = bb(x)
    theirs = kornia.geometry.transform.build_pyramid(x, 5)
    assert bb.canonical_taps == [f"level{i}" for i in range(5)]
    for got, expected in zip(ours.values(), theirs, strict=True):
        torch.testing.assert_close(got, expected)


def test_laplacian_pyramid_reconstructs_the_image():
    bb = create_backbone("laplacian_pyramid")
    x = torch.rand(1, 3, 64, 40)
    out = bb(x)
    image = out["lowpass"]
    for i in reversed(range(4)):
        band = out[f"band{i}"]
        image = band + kornia.geometry.transform.resize(image, band.shape[-2:], interpolation="bilinear")
    torch.testing.assert_close(image, x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["lowpass"], create_backbone("gaussian_pyramid")(x, ["level4"])["level4"])
    assert abs(out["band0"].mean().item()) < 0.05  # band-pass: about zero mean


def test_lab_is_kornias_and_l2_is_the_squared_cie76_difference():
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    lab = create_backbone("lab")
    torch.testing.assert_close(lab(x)["lab"], kornia.color.rgb_to_lab(x))
    delta_e2 = (kornia.color.rgb_to_lab(x) - kornia.color.rgb_to_lab(y)).square().sum(1).mean(dim=(1, 2))
    torch.testing.assert_close(perceptual_distance(x, y, "lab:lab/raw/l2"), delta_e2, rtol=1e-5, atol=1e-4)
    assert lab.tap_info("lightness").channels == 1


def test_ycbcr_luma_of_grey_is_the_grey_level():
    grey = torch.full((1, 1, 8, 8), 0.25)
    out = create_backbone("ycbcr")(grey, ["ycbcr", "luma"])
    torch.testing.assert_close(out["luma"], grey)
    torch.testing.assert_close(out["ycbcr"][:, 1:], torch.full((1, 2, 8, 8), 0.5))


def test_gradients_flow_and_smallest_size_is_enforced():
    p = build_pipeline("laplacian_pyramid:all/raw/l1")
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    p(x, torch.rand(1, 3, 32, 32)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(InputError, match=f"at least {p.min_size}x{p.min_size}"):
        p(torch.rand(1, 3, p.min_size - 1, p.min_size - 1), torch.rand(1, 3, p.min_size - 1, p.min_size - 1))


def test_weights_are_refused():
    with pytest.raises(WeightsError, match="has no weights"):
        create_backbone("pixel", weights="/some/file.pth")


def test_kornia_and_timm_are_not_imported_by_percept_or_its_registry():
    code = "import sys, percept; percept.list_backbones(); print('kornia' in sys.modules, 'timm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
