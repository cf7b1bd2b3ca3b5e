"""The promises of ``PerceptualLoss``, ``PerceptualMetric`` and ``perceptual_distance``.

Loss: reductions, gradients reach the input and never the network, the network stays frozen and in
eval mode and out of checkpoints, a target that needs no gradient runs without a graph, layers past
the deepest tap never run. Metric: sum/count states (a list only for ``reduction="none"``), bad input
raises ``InputError`` and leaves the state as it was, ``reset``. Functional: equals the pipeline.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torchmetrics.utilities.data import dim_zero_cat, dim_zero_sum

import percept
from percept import InputError, PerceptualLoss, PerceptualMetric, perceptual_distance
from percept.functional import clear_cache, get_pipeline
from percept.readouts.base import ChannelWeightedReadout

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")

SPEC = "alexnet:conv1,conv2"
SIZE = 32


def images(n: int = 2, size: int = SIZE, channels: int = 3) -> torch.Tensor:
    return torch.rand(n, channels, size, size)


def make_loss(spec: str = SPEC, **kwargs) -> PerceptualLoss:
    torch.manual_seed(0)  # same random network for every loss built here
    return PerceptualLoss(spec, weights=None, **kwargs)


def make_metric(spec: str = SPEC, **kwargs) -> PerceptualMetric:
    torch.manual_seed(0)
    return PerceptualMetric(spec, weights=None, **kwargs)


class Model(nn.Module):
    """A model that trains something and holds a perceptual loss, as user code does."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.loss = loss


class Passes:
    """Records each backbone pass: its batch size and whether its outputs carry a graph."""

    def __init__(self, backbone: nn.Module) -> None:
        self.calls: list[tuple[int, bool]] = []
        self.handle = backbone.register_forward_hook(self.hook)

    def hook(self, module, args, output) -> None:
        self.calls.append((args[0].shape[0], any(t.requires_grad for t in output.values())))


# -- PerceptualLoss ------------------------------------------------------------------------------


def test_reductions() -> None:
    x, y = images(3), images(3)
    per_sample = make_loss(reduction="none")(x, y)
    assert per_sample.shape == (3,)
    torch.testing.assert_close(make_loss(reduction="mean")(x, y), per_sample.mean())
    torch.testing.assert_close(make_loss(reduction="sum")(x, y), per_sample.sum())
    assert make_loss()(x, y).shape == ()  # mean by default
    with pytest.raises(ValueError, match="reduction"):
        make_loss(reduction="avg")


def test_gradient_reaches_input_not_network() -> None:
    loss = make_loss("lpips-alex")
    x, y = images().requires_grad_(True), images()
    loss(x, y).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert y.grad is None
    assert all(p.grad is None for p in loss.parameters())


def test_network_frozen_and_in_eval_under_parent_train() -> None:
    model = Model(make_loss("lpips-alex"))
    pipeline = model.loss.pipeline
    for mode in (True, False, True):
        model.train(mode)
        assert model.conv.training is mode
        for module in [*pipeline.backbone.modules(), *pipeline.readouts]:
            assert not module.training, type(module).__name__
        assert not any(p.requires_grad for p in pipeline.backbone.parameters())
        assert not any(p.requires_grad for p in pipeline.readouts.parameters())  # published heads
    assert all(p.requires_grad for p in model.conv.parameters())


def test_checkpoint_holds_no_network_and_loads_strictly() -> None:
    model = Model(make_loss("lpips-alex"))
    state = model.state_dict()
    assert sorted(state) == ["conv.bias", "conv.weight"]
    backbone_before = copy.deepcopy(model.loss.pipeline.backbone.state_dict())

    fresh = Model(make_loss("lpips-alex"))
    fresh.load_state_dict(state, strict=True)
    torch.testing.assert_close(fresh.conv.weight, model.conv.weight)
    model.load_state_dict(state, strict=True)  # loading leaves the frozen network as it was
    for key, value in model.loss.pipeline.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key]), key


def test_trainable_readout_stays_in_checkpoint() -> None:
    loss = make_loss("alexnet:conv1", readout=ChannelWeightedReadout(64, trainable=True))
    state = loss.state_dict()
    assert list(state) == ["pipeline.readouts.0.weight"]
    assert loss.pipeline.readouts[0].weight.requires_grad
    state["pipeline.readouts.0.weight"] = torch.full((64,), 0.5)
    loss.load_state_dict(state, strict=True)
    assert torch.equal(loss.pipeline.readouts[0].weight.detach(), torch.full((64,), 0.5))


@pytest.mark.parametrize(
    ("x_grad", "y_grad", "expected"),
    [
        (True, False, [(2, True), (2, False)]),  # the target runs without a graph
        (False, True, [(2, False), (2, True)]),
        (True, True, [(4, True)]),  # one batched pass
        (False, False, [(4, False)]),
    ],
    ids=["input-only", "target-only", "both", "neither"],
)
def test_backbone_passes(x_grad: bool, y_grad: bool, expected: list[tuple[int, bool]]) -> None:
    loss = make_loss(reduction="none")
    x, y = images(), images()
    reference = loss(x, y)
    passes = Passes(loss.pipeline.backbone)
    xr, yr = x.clone().requires_grad_(x_grad), y.clone().requires_grad_(y_grad)
    out = loss(xr, yr)
    assert passes.calls == expected
    torch.testing.assert_close(out.detach(), reference, rtol=1e-5, atol=1e-7)
    if x_grad or y_grad:
        out.sum().backward()
        assert (xr.grad is not None) is x_grad and (yr.grad is not None) is y_grad


def test_target_without_grad_keeps_no_activations() -> None:
    """Autograd keeps the backbone activations of the input only: half of what it keeps when the
    target needs a gradient too (whatever the passes are, batched or not)."""
    loss = make_loss()
    weights = {t.data_ptr() for t in [*loss.parameters(), *loss.buffers()]}  # kept once, whatever the batch
    backbone = loss.pipeline.backbone

    def saved_in_backbone(y_grad: bool) -> int:
        inside, total = [False], [0]

        def pack(t: torch.Tensor) -> torch.Tensor:
            if inside[0] and t.data_ptr() not in weights:
                total[0] += t.numel()
            return t

        handles = [
            backbone.register_forward_pre_hook(lambda m, a: inside.__setitem__(0, True)),
            backbone.register_forward_hook(lambda m, a, o: inside.__setitem__(0, False)),
        ]
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss(images().requires_grad_(True), images().requires_grad_(y_grad))
        for h in handles:
            h.remove()
        return total[0]

    one_side, both_sides = saved_in_backbone(False), saved_in_backbone(True)
    assert one_side > 0 and 2 * one_side == both_sides, (one_side, both_sides)


def test_layers_past_deepest_tap_never_run() -> None:
    loss = make_loss("vgg16:conv2")
    backbone = loss.pipeline.backbone
    assert backbone.tap_info("conv2").module == "features.8"  # relu2_2
    last = backbone.tap_info("conv2").index
    ran: list[str] = []
    handles = [
        module.register_forward_hook(lambda m, a, o, name=name: ran.append(name))
        for name, module in backbone.model.named_modules()
        if name and not list(module.children())
    ]
    loss(images(1), images(1))
    for h in handles:
        h.remove()
    expected = [f"features.{i}" for i in range(last + 1)]
    assert sorted(set(ran), key=ran.index) == expected, ran


# -- PerceptualMetric ----------------------------------------------------------------------------


def test_metric_flags() -> None:
    assert PerceptualMetric.higher_is_better is False
    assert PerceptualMetric.is_differentiable is True
    assert PerceptualMetric.full_state_update is False


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_metric_sum_and_count_states(reduction: str) -> None:
    metric = make_metric(reduction=reduction)
    assert set(metric.metric_state) == {"sum_scores", "total"}  # (and the hidden compute-group state)
    assert metric._reductions["sum_scores"] is dim_zero_sum and metric._reductions["total"] is dim_zero_sum
    batches = [(images(n), images(n)) for n in (2, 1, 3)]
    for x, y in batches:
        metric.update(x, y)
    with torch.no_grad():
        scores = torch.cat([metric.pipeline(x, y) for x, y in batches])
    assert int(metric.total) == 6
    torch.testing.assert_close(metric.sum_scores, scores.double().sum(), rtol=1e-6, atol=1e-8)
    expected = scores.mean() if reduction == "mean" else scores.sum()
    torch.testing.assert_close(metric.compute(), expected, rtol=1e-6, atol=1e-7)


def test_metric_none_keeps_every_score_in_order() -> None:
    metric = make_metric(reduction="none")
    assert set(metric.metric_state) == {"scores"}
    assert metric._reductions["scores"] is dim_zero_cat
    batches = [(images(n), images(n)) for n in (2, 1, 3)]
    for x, y in batches:
        metric.update(x, y)
    with torch.no_grad():
        expected = torch.cat([metric.pipeline(x, y) for x, y in batches])
    out = metric.compute()
    assert out.shape == (6,)
    torch.testing.assert_close(out, expected)


def test_metric_forward_is_differentiable_and_state_keeps_no_graph() -> None:
    metric = make_metric()
    x, y = images().requires_grad_(True), images()
    batch_value = metric(x, y)
    batch_value.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not metric.sum_scores.requires_grad
    torch.testing.assert_close(metric.compute(), batch_value.detach())


BAD_INPUTS = {
    "0-255 range": lambda x: x * 255,
    "[-1, 1] range": lambda x: x * 2 - 1,
    "NaN": lambda x: x.index_put_((torch.tensor([0]),), torch.tensor(float("nan"))),
    "Inf": lambda x: x.index_put_((torch.tensor([0]),), torch.tensor(float("inf"))),
    "no batch dim": lambda x: x[0],
    "4 channels": lambda x: torch.cat([x, x[:, :1]], dim=1),
    "too small": lambda x: x[..., :8, :8],
    "integer": lambda x: (x * 255).to(torch.uint8),
}


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("bad", list(BAD_INPUTS), ids=list(BAD_INPUTS))
@pytest.mark.parametrize("where", ["preds", "target"])
def test_metric_bad_update_raises_and_keeps_state(reduction: str, bad: str, where: str) -> None:
    metric = make_metric(reduction=reduction)
    metric.update(images(), images())
    before = copy.deepcopy(metric.metric_state)
    value = metric.compute()
    x, y = images(), images()
    if where == "preds":
        x = BAD_INPUTS[bad](x)
    else:
        y = BAD_INPUTS[bad](y)
    with pytest.raises(InputError):
        metric.update(x, y)
    after = metric.metric_state
    assert before.keys() == after.keys()
    for key, old in before.items():
        new = after[key]
        if isinstance(old, list):
            assert len(old) == len(new) and all(torch.equal(a, b) for a, b in zip(old, new, strict=True)), key
        else:
            assert torch.equal(old, new), key
    torch.testing.assert_close(metric.compute(), value)


def test_metric_mismatched_pair_raises() -> None:
    metric = make_metric()
    with pytest.raises(InputError):
        metric.update(images(2), images(3))
    assert int(metric.total) == 0


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_metric_reset(reduction: str) -> None:
    metric = make_metric(reduction=reduction)
    metric.update(images(3), images(3))
    metric.reset()
    if reduction == "none":
        assert metric.scores == []
    else:
        assert float(metric.sum_scores) == 0.0 and int(metric.total) == 0
    x, y = images(2), images(2)
    metric.update(x, y)
    with torch.no_grad():
        scores = metric.pipeline(x, y)
    expected = {"mean": scores.mean(), "sum": scores.sum(), "none": scores}[reduction]
    torch.testing.assert_close(metric.compute(), expected)


def test_metric_network_frozen_and_out_of_state_dict() -> None:
    metric = make_metric("lpips-alex")
    metric.train()
    assert not metric.pipeline.backbone.training
    assert not any(p.requires_grad for p in metric.pipeline.parameters())
    assert not any("backbone" in k or "readouts" in k for k in metric.state_dict())


# -- functional ----------------------------------------------------------------------------------


@pytest.fixture
def fresh_cache():
    clear_cache()
    yield
    clear_cache()


def test_perceptual_distance_with_a_pipeline() -> None:
    pipeline = percept.build_pipeline("lpips-alex", weights=None)
    x, y = images(3), images(3)
    torch.testing.assert_close(perceptual_distance(x, y, pipeline), pipeline(x, y), rtol=0, atol=0)
    torch.testing.assert_close(
        perceptual_distance(x, y, pipeline, spatial=True), pipeline(x, y, spatial=True), rtol=0, atol=0
    )


def test_perceptual_distance_with_a_spec(fresh_cache) -> None:
    x, y = images(3), images(3)
    d = perceptual_distance(x.requires_grad_(True), y, SPEC, weights=None)
    cached = get_pipeline(SPEC, x.device, weights=None)  # the pipeline perceptual_distance built
    assert cached is get_pipeline(SPEC, x.device, weights=None)
    torch.testing.assert_close(d, cached(x, y), rtol=0, atol=0)
    d.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
