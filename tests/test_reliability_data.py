"""Caches keyed by content (issue 27 case 3) and empty metric batches (case 18)."""

from __future__ import annotations

import pytest
import torch

from percept import PerceptualMetric, perceptual_distance
from percept.functional import clear_cache

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")


def test_state_dicts_differing_only_where_repr_elides_do_not_share_a_pipeline():
    """Case 3: the pipelines were keyed by repr(kwargs), which elides the middle of a large tensor."""
    import torchvision

    state = torchvision.models.alexnet().state_dict()
    state = dict(state)
    other = {k: v.clone() for k, v in state.items()}
    name = next(k for k, v in other.items() if v.numel() > 5000)
    other[name].view(-1)[other[name].numel() // 2] += 100.0
    assert repr(state) == repr(other)
    x, y = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    clear_cache()
    first = perceptual_distance(x, y, "alexnet:conv1,conv2", weights=state)
    second = perceptual_distance(x, y, "alexnet:conv1,conv2", weights=other)
    clear_cache()
    assert second.item() == pytest.approx(perceptual_distance(x, y, "alexnet:conv1,conv2", weights=other).item())
    assert first.item() != pytest.approx(second.item())


def test_an_empty_batch_is_a_no_op_for_the_metric():
    """Case 18: decided as torchmetrics does: an empty batch leaves the state as it was."""
    metric = PerceptualMetric("pixel:pixel/raw/l2")
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    metric.update(x[:0], y[:0])
    metric.update(x, y)
    metric.update(x[:0], y[:0])
    assert metric.total.item() == 2
    assert metric.compute().item() == pytest.approx(perceptual_distance(x, y, "pixel:pixel/raw/l2").mean().item())
    with pytest.raises(Exception, match="empty batch|same shape"):
        metric.update(x[:0], y[:0, :, :8])
