"""When the CPU path of the fused op compiles: once per variant for every image size, once across threads,
never for a short job, and without recompiles."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import torch
from torch._dynamo.testing import CompileCounter

from percept.ops import compile_count, compiling, feature_distance, feature_distance_reference

# Every size at least 2 (dynamo specialises sizes 0 and 1: a batch of one is its own variant), square
# and non-square maps (duck shaping would tie H to W), channel counts that differ.
SIZES = [(2, 8, 6, 6), (3, 8, 5, 9), (2, 16, 7, 4), (4, 3, 11, 13), (2, 64, 3, 2)]


@pytest.fixture
def counter(monkeypatch) -> CompileCounter:
    """A fresh set of variants, compiled by dynamo with a counting backend (no inductor: fast)."""
    count = CompileCounter()
    monkeypatch.setattr(compiling, "_variants", {})
    monkeypatch.setattr(compiling, "_compile_failed", False)
    monkeypatch.setattr(compiling, "_last_compile_seconds", None)
    monkeypatch.setattr(compiling, "_eager_seconds", 0.0)
    monkeypatch.setattr(
        compiling, "_compile", lambda fn, dynamic=True: torch.compile(fn, dynamic=dynamic, backend=count)
    )
    return count


def run(shape, *, backend, grad=True, weight="plain"):
    x = torch.randn(shape, requires_grad=grad)
    y = torch.randn(shape)
    w = {"plain": torch.rand(shape[1]), "none": None}.get(weight, weight)
    out = feature_distance(x, y, w, normalize=True, kind="sq", backend=backend)
    if grad:
        out.sum().backward()
    return out


def test_one_compile_per_direction_over_many_sizes(counter):
    for shape in SIZES:
        run(shape, backend="compiled")
        # an LPIPS head's weight is a trainable Parameter, whose shape dynamo would take as static
        run(shape, backend="compiled", weight=torch.nn.Parameter(torch.rand(shape[1])))
        run(shape, backend="compiled", weight="none")
    # forwards with and without a weight, backwards for the three (the Parameter's also computes the
    # weight's gradient): five functions, each compiled once for every size
    assert counter.frame_count == 5
    assert compile_count() == 5


def check_compiled(shape) -> None:
    """The compiled op's value and input gradient at ``shape`` equal the reference's."""
    x, y, w = torch.randn(shape, requires_grad=True), torch.randn(shape), torch.rand(shape[1])
    got = feature_distance(x, y, w, normalize=True, backend="compiled")
    got.sum().backward()
    xr = x.detach().clone().requires_grad_()
    want = feature_distance_reference(xr, y, w, normalize=True)
    want.sum().backward()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x.grad, xr.grad, atol=1e-5, rtol=1e-4)


def test_compiled_values_match_the_reference_at_every_size(counter):
    for shape in SIZES:
        check_compiled(shape)
    assert counter.frame_count == 2


def test_chosen_backend_runs_eagerly_until_eager_calls_cost_a_compile(counter, monkeypatch):
    monkeypatch.setenv("PERCEPT_FUSED", "1")  # the compiled op, chosen rather than named
    monkeypatch.setattr(compiling, "COMPILE_AFTER_SECONDS", 3600.0)
    for shape in SIZES * 3:
        run(shape, backend=None)
    assert counter.frame_count == 0  # a short job never waits for the compiler
    monkeypatch.setattr(compiling, "COMPILE_AFTER_SECONDS", 1e-9)
    for shape in SIZES:
        run(shape, backend=None)
    assert counter.frame_count == 2  # then forward and backward compile, once each


def test_before_the_first_compile_every_variant_counts_against_one_budget(counter, monkeypatch):
    """The compiler's import and set-up are paid once for all: a forward and its backward reach the budget
    together, and after that first compile each variant counts its own calls against its own price."""
    monkeypatch.setenv("PERCEPT_FUSED", "1")
    monkeypatch.setattr(compiling, "COMPILE_AFTER_SECONDS", 3600.0)
    run(SIZES[0], backend=None)
    forward, backward = (v.eager_seconds for v in compiling._variants.values())
    assert forward > 0 and backward > 0 and counter.frame_count == 0
    assert compiling._eager_seconds == pytest.approx(forward + backward)
    # a budget that neither function reached alone, but the two did together: the next call compiles
    saving = 1 - compiling.COMPILED_SHARE
    monkeypatch.setattr(compiling, "COMPILE_AFTER_SECONDS", (forward + backward) * 0.99 * saving)
    assert max(forward, backward) < compiling.eager_budget()
    # once that first compile is paid, the backward's own price (say nothing) is due at once
    price = {"after": 0.0}
    monkeypatch.setattr(
        compiling,
        "compile_price",
        lambda: compiling.COMPILE_AFTER_SECONDS if compiling._last_compile_seconds is None else price["after"],
    )
    run(SIZES[0], backend=None)
    assert counter.frame_count == 2
    # a new variant (no weight) after the first compile: its own eager seconds against the price
    price["after"] = 3600.0
    run(SIZES[0], backend=None, weight="none")
    assert counter.frame_count == 2
    price["after"] = 0.0
    run(SIZES[0], backend=None, weight="none")
    assert counter.frame_count == 4


def test_the_compilers_import_is_timed_apart_from_the_price(monkeypatch):
    """The real ``_compile`` (dynamo with a counting backend): an import that takes 2 s is timed as the import,
    once per process, and not counted in the price of the compile that paid it."""
    count, real_compile = CompileCounter(), torch.compile
    monkeypatch.setattr(compiling, "_variants", {})
    monkeypatch.setattr(compiling, "_compile_failed", False)
    monkeypatch.setattr(compiling, "_last_compile_seconds", None)
    monkeypatch.setattr(compiling, "_import_seconds", None)
    monkeypatch.setattr(compiling, "_import_cpp_extension_quietly", lambda: time.sleep(2.0))
    monkeypatch.setattr(torch, "compile", lambda fn, dynamic=True: real_compile(fn, dynamic=dynamic, backend=count))
    run(SIZES[0], backend="compiled")
    assert count.frame_count == 2
    first = compiling.import_seconds()
    assert first is not None and first >= 2.0
    assert compiling.compile_price() < 2.0  # the last compile's own time, without the import
    compiling._import_compiler()
    assert compiling.import_seconds() == first  # paid once per process


def test_a_shape_that_keeps_coming_gets_specialised_code_and_new_sizes_keep_the_dynamic_one(counter, monkeypatch):
    monkeypatch.setattr(compiling, "compile_price", lambda: 0.0)  # every compile pays at once
    monkeypatch.setattr(compiling, "STATIC_SHAPES", 1)
    first, second = SIZES[0], SIZES[1]

    check_compiled(first)
    assert counter.frame_count == 2  # forward and backward, dynamic
    check_compiled(first)
    assert counter.frame_count == 2  # its first call on the dynamic code, timed
    check_compiled(first)
    assert counter.frame_count == 4  # the shape came again: specialised forward and backward
    check_compiled(first)
    check_compiled(second)
    check_compiled(second)
    assert counter.frame_count == 4  # specialised code reused; the new size runs the dynamic code (at most 1 shape)
    assert all(len(v.static) == 1 for v in compiling._variants.values())
    assert compile_count() == 4


def test_the_budget_is_the_eager_time_on_which_compiling_saves_its_price(counter, monkeypatch):
    saving = 1 - compiling.COMPILED_SHARE  # what a compiled call saves, as a share of the eager call
    assert compiling.compile_price() == compiling.COMPILE_AFTER_SECONDS
    assert compiling.eager_budget() == pytest.approx(compiling.COMPILE_AFTER_SECONDS / saving)
    monkeypatch.setattr(compiling, "_last_compile_seconds", 0.25)
    assert compiling.compile_price() == 0.25
    assert compiling.eager_budget() == pytest.approx(0.25 / saving)
    monkeypatch.setattr(compiling, "_last_compile_seconds", 60.0)
    assert compiling.compile_price() == 60.0  # what a specialised compile is expected to cost
    assert compiling.eager_budget() == pytest.approx(compiling.COMPILE_AFTER_SECONDS / saving)  # never above


def test_layouts_compile_once_each_and_odd_strides_run_eagerly(counter):
    x = torch.randn(3, 8, 6, 5)
    y = torch.randn(3, 8, 6, 5)
    for shape in SIZES[:3]:
        a = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        feature_distance(a, torch.randn(shape).contiguous(memory_format=torch.channels_last), backend="compiled")
        ref = torch.randn(1, *shape[1:]).expand(shape)  # a reference broadcast against a batch (the sweep)
        feature_distance(torch.randn(shape), ref, backend="compiled")
    assert counter.frame_count == 2
    strided = torch.randn(3, 8, 6, 10)[..., ::2]
    torch.testing.assert_close(
        feature_distance(strided, y, backend="compiled"), feature_distance_reference(strided, y), atol=1e-5, rtol=1e-5
    )
    assert counter.frame_count == 2  # strides of no known layout run eagerly
    feature_distance(x, y, backend="compiled")
    assert counter.frame_count == 3


def test_concurrent_first_calls_compile_once(monkeypatch):
    count = CompileCounter()

    def slow_backend(gm, example_inputs):  # a compile that takes a while, so the threads overlap it
        time.sleep(0.5)
        return count(gm, example_inputs)

    monkeypatch.setattr(compiling, "_variants", {})
    monkeypatch.setattr(compiling, "_compile_failed", False)
    monkeypatch.setattr(compiling, "_last_compile_seconds", None)
    monkeypatch.setattr(
        compiling, "_compile", lambda fn, dynamic=True: torch.compile(fn, dynamic=dynamic, backend=slow_backend)
    )
    x, y, w = torch.randn(4, 16, 9, 7), torch.randn(4, 16, 9, 7), torch.rand(16)
    want = feature_distance_reference(x, y, w, normalize=True)
    barrier = threading.Barrier(8)
    results, errors = [], []

    def work():
        try:
            barrier.wait()
            for _ in range(3):
                results.append(feature_distance(x, y, w, normalize=True, backend="compiled"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert count.frame_count == 1
    assert len(results) == 24
    for r in results:
        torch.testing.assert_close(r, want, atol=1e-5, rtol=1e-5)


def test_inductor_compiles_once_for_every_size_without_recompile_warnings(monkeypatch):
    """The real compiler, as users run it: one graph for the forward over sizes, a Parameter as weight."""
    from torch._dynamo.utils import counters

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    monkeypatch.setattr(compiling, "_variants", {})
    monkeypatch.setattr(compiling, "_compile_failed", False)
    monkeypatch.setattr(compiling, "_last_compile_seconds", None)
    before = counters["stats"]["unique_graphs"]
    weight = torch.nn.Parameter(torch.rand(8))
    collect = Collect()
    logging.getLogger("torch._dynamo").addHandler(collect)
    try:
        with torch.no_grad():
            for shape in [(2, 8, 6, 6), (3, 8, 5, 9), (2, 8, 12, 3)]:
                x, y = torch.randn(shape), torch.randn(shape)
                got = feature_distance(x, y, weight, normalize=True, backend="compiled")
                torch.testing.assert_close(got, feature_distance_reference(x, y, weight, normalize=True))
    finally:
        logging.getLogger("torch._dynamo").removeHandler(collect)
    if compiling._compile_failed:
        pytest.skip("torch.compile does not work here (no C++ compiler?)")
    assert counters["stats"]["unique_graphs"] - before == 1
    assert not [m for m in collect.messages if "recompil" in m.lower()], collect.messages
