"""Bad input gets a clear error naming what was expected and what came, at every entry point."""

from __future__ import annotations

import warnings

import pytest
import torch

from percept import InputError, PerceptualLoss, RandomWeightsWarning, perceptual_distance
from percept.validation import check_images


@pytest.fixture(scope="module")
def loss():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return PerceptualLoss("alexnet:conv1,conv2", weights=None)


GOOD = torch.rand(2, 3, 48, 48)


@pytest.mark.parametrize(
    ("x", "needle"),
    [
        (torch.rand(3, 48, 48), "(N, C, H, W), got 3 dimensions"),
        (torch.rand(2, 4, 48, 48), "1 or 3 channels"),
        (torch.rand(2, 4, 48, 48), "RGBA: drop the alpha channel with x[:, :3]"),
        (torch.rand(2, 48, 48, 3), "channels-last (N, H, W, C) data: pass x.permute(0, 3, 1, 2)"),
        (torch.rand(2, 48, 48, 1), "channels-last (N, H, W, C) data: pass x.permute(0, 3, 1, 2)"),
        (torch.rand(2, 48, 48, 4), "channels-last RGBA (N, H, W, 4) data: pass x.permute(0, 3, 1, 2)[:, :3]"),
        ((torch.rand(2, 3, 48, 48) * 255).to(torch.uint8), "floating-point"),
        (torch.rand(2, 3, 48, 48) * 255, "0..255 data"),
        (torch.rand(2, 3, 48, 48) * 2 - 1, "[-1, 1] data"),
        (torch.full((2, 3, 48, 48), float("nan")), "NaN or Inf"),
        (torch.full((2, 3, 48, 48), float("inf")), "NaN or Inf"),
        (torch.rand(0, 3, 48, 48), "empty batch"),
        (torch.rand(2, 3, 8, 48), "at least"),
        ([[0.5]], "torch.Tensor"),
    ],
)
def test_loss_rejects_bad_input(loss, x, needle):
    with pytest.raises(InputError) as info:
        loss(x, GOOD)  # x is checked first
    assert needle in str(info.value)


def test_shape_mismatch(loss):
    with pytest.raises(InputError, match=r"same shape, got \(2, 3, 48, 48\) and \(2, 3, 40, 48\)"):
        loss(GOOD, torch.rand(2, 3, 40, 48))


def test_dtype_mismatch(loss):
    with pytest.raises(InputError, match="same dtype"):
        loss(GOOD, GOOD.double())


def test_nan_in_target_is_caught(loss):
    bad = GOOD.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="y holds NaN"):
        loss(GOOD, bad)


def test_minus_one_one_range_accepted_when_declared():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        loss = PerceptualLoss("alexnet:conv1", weights=None, input_range=(-1, 1))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0.0
    with pytest.raises(InputError, match=r"values in \[-1, 1\]"):
        loss(x * 3, x)


def test_message_shows_shape_dtype_and_range():
    with pytest.raises(InputError) as info:
        check_images(torch.rand(1, 3, 8, 8) * 255, "preds")
    message = str(info.value)
    assert "preds" in message and "(1, 3, 8, 8)" in message and "float32" in message and "[0, 1]" in message


def test_checks_can_be_turned_off():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        loss = PerceptualLoss("alexnet:conv1", weights=None, check_inputs=False)
    assert torch.isfinite(loss(GOOD * 255, GOOD))


def test_functional_rejects_bad_input():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        with pytest.raises(InputError, match="0..255"):
            perceptual_distance(GOOD * 255, GOOD, "alexnet:conv1", weights=None)


@pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")
def test_bad_input_range_argument():
    with pytest.raises(InputError, match="low < high"):
        PerceptualLoss("alexnet:conv1", weights=None, input_range=(1, 0))


def test_channel_hints_name_the_argument_and_follow_the_fix():
    """The fix the message gives works: the permuted or cut tensor passes the check."""
    nhwc, rgba = torch.rand(2, 48, 48, 3), torch.rand(2, 4, 48, 48)
    with pytest.raises(InputError, match=r"pass preds\.permute\(0, 3, 1, 2\)"):
        check_images(nhwc, "preds")
    assert check_images(nhwc.permute(0, 3, 1, 2), "preds").shape == (2, 3, 48, 48)
    assert check_images(rgba[:, :3]).shape == (2, 3, 48, 48)
    with pytest.raises(InputError) as info:  # 5 channels: no guess
        check_images(torch.rand(2, 5, 48, 48))
    assert "looks like" not in str(info.value)
