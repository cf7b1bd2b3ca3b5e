"""percept.metric_compat: the three promises torchmetrics does not make, pinned on small metrics (issue 24, item 7).

1. a compute group of its own in a ``MetricCollection`` (a state named for each instance, hidden from
   ``metric_state``, the ``state_dict`` and ``merge_state``);
2. the states of ``keep_dtype`` keep their dtype (and their exact value) under ``.to(dtype)``, a parent's
   ``.to(dtype)`` and ``set_dtype``, and still move between devices;
3. ``keep_result_1d``: a one-element result stays ``(1,)`` from ``compute`` and ``forward``, after pickling too.

The suite runs this against the installed torchmetrics. Against the oldest release percept supports (pyproject:
``torchmetrics>=1.0``), or any other, without touching the environment::

    pip install --target /tmp/tm_old "torchmetrics==1.0.0" --no-deps
    PYTHONPATH=/tmp/tm_old python -m pytest tests/test_metric_compat.py tests/test_module_behaviour.py \\
        tests/test_loss_metric.py tests/test_metric_options.py tests/test_ddp.py
"""

from __future__ import annotations

import copy
import inspect
import pickle

import pytest
import torch
from torch import nn
from torchmetrics import Metric, MetricCollection

from percept import PerceptualMetric
from percept.metric_compat import GROUP_PREFIX, MetricBase


class Mean(MetricBase):
    """A float64 running sum and an integer count (kept), plus a float32 state that is not kept."""

    full_state_update = False

    def __init__(self, keep: tuple[str, ...] = ("total", "count"), **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("last", default=torch.tensor(0.0), dist_reduce_fx="max")
        self.keep_dtype = keep

    def update(self, x: torch.Tensor) -> None:
        self.total = self.total + x.double().sum()
        self.count = self.count + x.numel()
        self.last = torch.maximum(self.last, x.max().float()) if x.numel() else self.last

    def compute(self) -> torch.Tensor:
        return self.total / self.count


class Scores(MetricBase):
    """A list state, every value kept, given back whole (1-d, one value included)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("values", default=[], dist_reduce_fx="cat")
        self.keep_result_1d = True

    def update(self, x: torch.Tensor) -> None:
        self.values.append(x.reshape(-1))

    def compute(self) -> torch.Tensor:
        return torch.cat(self.values) if isinstance(self.values, list) else self.values


# -- 1. a compute group of its own ----------------------------------------------------------------------


def test_equal_states_never_merge_two_metrics_in_a_collection() -> None:
    collection = MetricCollection({"a": Mean(), "b": Mean()})
    for x in (torch.zeros(3), torch.ones(2)):
        collection.update(x)
    assert collection.compute_groups == {0: ["a"], 1: ["b"]}
    assert {k: float(v) for k, v in collection.compute().items()} == {"a": 0.4, "b": 0.4}


def test_two_percept_metrics_with_equal_first_states_stay_apart() -> None:
    metrics = {name: PerceptualMetric(f"pixel:pixel/raw/{name}", check_inputs=False) for name in ("l1", "l2")}
    collection = MetricCollection(metrics)
    x, y = torch.rand(2, 2, 3, 16, 16, generator=torch.Generator().manual_seed(0)).unbind(0)
    for a, b in [(x, x), (x, y)]:  # identical pairs first: both sums are zero
        collection.update(a, b)
    assert collection.compute_groups == {0: ["l1"], 1: ["l2"]}
    values = collection.compute()
    for name, metric in metrics.items():
        torch.testing.assert_close(values[name], metric.pipeline(x, y).sum() / 4, rtol=1e-6, atol=0)


@pytest.mark.filterwarnings("ignore:The ``compute`` method:UserWarning")  # restored states, no update
def test_the_group_state_is_hidden_and_kept_by_copies() -> None:
    metric = Mean()
    assert metric.compute_group.startswith(GROUP_PREFIX) and metric.compute_group != Mean().compute_group
    assert metric.state_names == ["total", "count", "last"] and list(metric.metric_state) == metric.state_names
    metric.update(torch.tensor([1.0, 2.0]))
    assert metric.state_dict() == {}  # torchmetrics' default: no state is persistent
    metric.persistent(True)
    state = metric.state_dict()
    assert sorted(state) == ["count", "last", "total"]
    nested = nn.ModuleDict({"m": metric}).state_dict()
    assert sorted(nested) == ["m.count", "m.last", "m.total"]
    restored = Mean()
    restored.load_state_dict(state, strict=True)
    assert float(restored.compute()) == 1.5
    for copied in (metric.clone(), copy.deepcopy(metric), pickle.loads(pickle.dumps(metric))):
        assert copied.compute_group == metric.compute_group  # a copy is the same computation


def test_forward_accumulates_with_the_group_state() -> None:
    metric = Mean()
    assert float(metric(torch.tensor([1.0, 3.0]))) == 2.0
    assert float(metric(torch.tensor([5.0]))) == 5.0
    assert float(metric.compute()) == 3.0 and int(metric.count) == 3


@pytest.mark.skipif(not hasattr(Metric, "merge_state"), reason="merge_state came in torchmetrics 1.6")
def test_merge_state_takes_a_metric_or_its_metric_state() -> None:
    a, b = Mean(), Mean()
    a.update(torch.tensor([1.0]))
    b.update(torch.tensor([2.0, 3.0]))
    a.merge_state(b)
    assert float(a.total) == 6.0 and int(a.count) == 3 and float(a.last) == 3.0
    a.merge_state(
        {"total": torch.tensor(4.0, dtype=torch.float64), "count": torch.tensor(1), "last": torch.tensor(4.0)}
    )
    assert float(a.compute()) == 2.5 and float(a.last) == 4.0
    with pytest.raises(ValueError, match="Expected incoming state to be an instance of Mean"):
        a.merge_state(Scores())


# -- 2. states that keep their dtype ----------------------------------------------------------------


@pytest.mark.parametrize("cast", ["to", "parent.to", "set_dtype"])
def test_kept_states_keep_dtype_and_value_under_a_cast(cast: str) -> None:
    metric = Mean()
    metric.update(torch.tensor([1.0, 1.0, 1.0 / 3.0], dtype=torch.float64))
    exact = metric.total.clone()
    if cast == "to":
        metric.to(torch.bfloat16)
    elif cast == "parent.to":
        nn.Sequential(nn.Linear(1, 1), metric).to(torch.bfloat16)  # how Lightning's "bf16-true" reaches it
    else:
        metric.set_dtype(torch.bfloat16)
    assert metric.total.dtype == torch.float64 and torch.equal(metric.total, exact)  # not rounded through bf16
    assert metric.count.dtype == torch.long and int(metric.count) == 3
    assert metric.last.dtype == torch.bfloat16  # a state not named in keep_dtype is cast, as torchmetrics does
    metric.reset()
    assert metric.total.dtype == torch.float64 and metric.count.dtype == torch.long


def test_kept_states_move_between_devices_and_the_others_are_cast() -> None:
    metric = Mean()
    metric.update(torch.tensor([2.0]))
    moved = metric.to("meta")
    assert moved.total.device.type == moved.count.device.type == moved.last.device.type == "meta"
    assert moved.total.dtype == torch.float64
    unkept = Mean(keep=())
    unkept.update(torch.tensor([2.0]))
    assert unkept.set_dtype(torch.float16).total.dtype == torch.float16  # torchmetrics' own rule without keep_dtype


def test_the_one_private_hook_is_there() -> None:
    """``Metric._apply(fn, exclude_state=...)``: what item 2 relies on; a torchmetrics without it fails here."""
    assert "exclude_state" in inspect.signature(Metric._apply).parameters


# -- 3. results that keep one dimension ---------------------------------------------------------------


def test_a_one_element_result_stays_one_dimensional_also_after_copies() -> None:
    metric = Scores()
    assert metric(torch.tensor([0.5])).shape == (1,)  # forward: this batch's values
    assert metric.compute().shape == (1,)
    for copied in (pickle.loads(pickle.dumps(metric)), copy.deepcopy(metric), metric.clone()):
        assert copied.compute().shape == (1,)
        copied.update(torch.tensor([0.25]))
        assert copied.compute().tolist() == [0.5, 0.25]
    assert metric.compute().shape == (1,)
    plain = Mean()
    plain.update(torch.tensor([2.0]))
    assert plain.compute().shape == ()  # without keep_result_1d torchmetrics' squeeze stays
