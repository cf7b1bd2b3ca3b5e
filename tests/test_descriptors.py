"""Descriptor readouts (mean, std, meanstd, gram) and the style distance."""

from __future__ import annotations

import pytest
import torch
from conftest import no_random_warning

from percept import InputError, build_pipeline, list_distances, list_readouts
from percept.builtin.descriptors import Gram, Mean, MeanStd, Std, channel_mean_std, gram_matrix
from percept.builtin.style import GramDistance


def test_registered():
    assert {"mean", "meanstd", "gram"} <= set(list_readouts())
    assert "style" in list_distances()


def test_shapes_and_values_against_numpy_definitions():
    f = torch.rand(3, 5, 7, 4, dtype=torch.float64)
    flat = f.reshape(3, 5, 28).numpy()
    assert Mean()(f).shape == (3, 5)
    torch.testing.assert_close(Mean()(f), torch.from_numpy(flat.mean(-1)))
    torch.testing.assert_close(Std()(f), torch.from_numpy((flat.var(-1) + 1e-8) ** 0.5))
    ms = MeanStd()(f)
    assert ms.shape == (3, 10)
    torch.testing.assert_close(ms[:, 5:], Std()(f))
    g = Gram()(f)
    assert g.shape == (3, 25)
    expected = torch.from_numpy(flat @ flat.transpose(0, 2, 1) / 28).reshape(3, 25)
    torch.testing.assert_close(g, expected)


def test_gram_is_symmetric_psd_and_half_runs_in_float32():
    g = gram_matrix(torch.randn(2, 6, 5, 5), flatten=False)
    torch.testing.assert_close(g, g.transpose(1, 2))
    assert torch.linalg.eigvalsh(g).min() > -1e-5
    assert gram_matrix(torch.randn(1, 3, 4, 4).half()).dtype == torch.float32


def test_std_gradient_finite_on_constant_channel():
    f = torch.ones(1, 2, 4, 4, requires_grad=True)
    channel_mean_std(f)[1].sum().backward()
    assert torch.isfinite(f.grad).all()


def test_bad_input_names_shape():
    with pytest.raises(InputError, match=r"\(N, C, H, W\).*\(4, 4, 4\)"):
        Gram()(torch.rand(4, 4, 4))
    torch.testing.assert_close(Gram()(torch.tensor([[1.0, 2.0]])), torch.tensor([[1.0, 2.0, 2.0, 4.0]]))
    with pytest.raises(InputError, match="no spatial map"):
        GramDistance()(torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3, 3), spatial=True)


def test_style_distance_ignores_pixel_order_and_equals_gram_readout_plus_mse():
    a = torch.rand(2, 4, 6, 6)
    perm = torch.randperm(36)
    shuffled = a.flatten(2)[..., perm].reshape(2, 4, 6, 6)
    assert GramDistance()(a, shuffled).abs().max() < 1e-6
    b = torch.rand(2, 4, 6, 6)
    expected = ((gram_matrix(a) - gram_matrix(b)) ** 2).mean(1)
    torch.testing.assert_close(GramDistance()(a, b), expected)


@pytest.fixture(scope="module")
def vgg19_style():
    with no_random_warning():
        return build_pipeline("vgg19:relu1_1,relu2_1,relu3_1/gram", weights=None)


def test_style_spec_end_to_end(vgg19_style):
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    d = vgg19_style(x, y)
    assert d.shape == (2,) and (d > 0).all()
    assert vgg19_style(x, x).abs().max() == 0
    # the same numbers through the style distance on raw features
    fx, fy = vgg19_style.features(x, y)
    direct = sum(GramDistance()(fx[t], fy[t]) for t in vgg19_style.taps)
    torch.testing.assert_close(d, direct)
    xg = x.clone().requires_grad_(True)
    vgg19_style(xg, y).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_meanstd_spec(vgg19_style):
    with no_random_warning():
        p = build_pipeline("vgg19:relu2_1/meanstd/l2", weights=None)
    x = torch.rand(1, 3, 24, 24)
    assert p(x, x).item() == 0
    assert p(x, torch.rand(1, 3, 24, 24)).item() > 0
