"""No host-device synchronisation per training step: value checks on a schedule, memory checked once per shape.

On the CPU nothing synchronises, so the CPU tests treat it as a device where reading a value would
(``reads_synchronise`` patched) and count the calls that would wait for it; the CUDA test runs the real
thing under ``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import percept
from percept import memory, validation
from percept.errors import InputError

SPEC = "alexnet:conv1,conv2"
STEPS = 10
READS_PER_CHECK = 2 * 2 + 1  # min and max of both images, and whether the score is finite (issue 27 case 7)


def _loss(**kwargs) -> percept.PerceptualLoss:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", percept.RandomWeightsWarning)
        return percept.PerceptualLoss(SPEC, weights=None, **kwargs)


class Counts:
    """Counts the Python-level ways of reading a tensor's value on the host, and free-memory queries."""

    def __init__(self, monkeypatch) -> None:
        self.reads = 0
        self.memory = 0
        for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counting(original))
        original_available = memory.available_bytes

        def available(device):
            self.memory += 1
            return original_available(device)

        monkeypatch.setattr(percept.memory, "available_bytes", available)

    def _counting(self, original):
        def read(t, *args, **kwargs):
            self.reads += 1
            return original(t, *args, **kwargs)

        return read


@pytest.fixture
def as_on_a_gpu(monkeypatch):
    """Fresh schedules, and the CPU treated as a device whose reads synchronise."""
    monkeypatch.setattr(validation, "_value_calls", type(validation._value_calls)())
    monkeypatch.setattr(validation, "reads_synchronise", lambda device: True)
    monkeypatch.setattr(percept.memory, "reads_synchronise", lambda device: True)


def _train(loss, counts: Counts | None = None, steps: int = STEPS, size: int = 48) -> None:
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 3, 3, padding=1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    target = torch.rand(2, 3, size, size)
    for _ in range(steps):
        out = torch.sigmoid(model(torch.rand(2, 3, size, size)))
        opt.zero_grad()
        loss(out, target).backward()
        opt.step()


@pytest.mark.usefixtures("as_on_a_gpu")
def test_training_loop_reads_values_only_in_its_first_steps(monkeypatch):
    loss = _loss()
    counts = Counts(monkeypatch)
    _train(loss, counts)
    # The first VALUE_CHECK_FIRST steps look at both images (min and max: two reads each) and at the score (is it
    # finite: one read); then nothing.
    assert counts.reads == validation.VALUE_CHECK_FIRST * READS_PER_CHECK
    assert counts.memory == 1  # the memory estimate: once for this input shape
    # Another image size is another signature: checked again, from its own first step.
    _train(loss, counts, steps=2, size=64)
    assert counts.reads == (validation.VALUE_CHECK_FIRST + 2) * READS_PER_CHECK
    assert counts.memory == 2


def test_on_the_cpu_every_step_is_checked(monkeypatch):
    """Reading a value on the CPU costs no synchronisation: every step's values and memory are checked."""
    loss = _loss()
    counts = Counts(monkeypatch)
    _train(loss, counts)
    assert counts.reads == STEPS * READS_PER_CHECK
    assert counts.memory == STEPS


@pytest.mark.usefixtures("as_on_a_gpu")
def test_value_check_schedule():
    x = torch.rand(2, 3, 8, 8)
    due = [i for i in range(160) if validation.value_check_due(x)]
    first, every = validation.VALUE_CHECK_FIRST, validation.VALUE_CHECK_EVERY
    assert due == [*range(first), first - 1 + every, first - 1 + 2 * every, first - 1 + 3 * every]
    assert validation.value_check_due(torch.rand(2, 3, 8, 9))  # a new shape starts its own count


@pytest.mark.usefixtures("as_on_a_gpu")
def test_bad_values_are_caught_in_the_first_steps_and_on_schedule():
    loss = _loss()
    good = torch.rand(2, 3, 48, 48)
    with pytest.raises(InputError, match="divide by 255"):
        loss(good * 255, good)  # the classic setup mistake shows at the first step
    scheduled = validation.VALUE_CHECK_FIRST - 1 + validation.VALUE_CHECK_EVERY  # index of the next checked call
    for _ in range(scheduled - 1):  # the refused call counted as one
        loss(good, good)
    nan = good.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN or Inf"):
        loss(nan, good)


@pytest.mark.usefixtures("as_on_a_gpu")
def test_memory_refusal_is_not_remembered(monkeypatch):
    loss = _loss()
    x = torch.rand(2, 3, 48, 48)
    monkeypatch.setattr(percept.memory, "available_bytes", lambda device: 1024)
    for _ in range(2):
        with pytest.raises(InputError, match="available"):
            loss(x, x)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@cuda
def test_cuda_training_steps_do_not_synchronise():
    loss = _loss().cuda()
    model = torch.nn.Conv2d(3, 3, 3, padding=1).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    target = torch.rand(2, 3, 64, 64, device="cuda")
    inputs = torch.rand(STEPS + validation.VALUE_CHECK_FIRST, 2, 3, 64, 64, device="cuda")

    def step(i):
        out = torch.sigmoid(model(inputs[i]))
        opt.zero_grad()
        loss(out, target).backward()
        opt.step()

    for i in range(validation.VALUE_CHECK_FIRST):  # the checked first steps (and any lazy initialisation)
        step(i)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(validation.VALUE_CHECK_FIRST, validation.VALUE_CHECK_FIRST + STEPS):
            step(i)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
