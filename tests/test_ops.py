"""The fused feature-difference op: every backend against the reference, gradients, memory."""

from __future__ import annotations

import os

# Without CUDA, tests/conftest.py sets TRITON_INTERPRET=1 before anything imports triton.
import pytest
import torch

from percept.ops import BACKENDS, choose_backend, feature_distance, feature_distance_reference, release_workspace
from percept.ops.fused import FeatureDistanceFunction, triton_available

KINDS = ("sq", "abs", "cos")
TOL = {torch.float32: 2e-5, torch.float16: 2e-2, torch.bfloat16: 5e-2, torch.float64: 1e-10}

needs_triton = pytest.mark.skipif(
    not triton_available() or (os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available()),
    reason="Triton is not installed, or neither CUDA nor TRITON_INTERPRET=1 is available",
)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def layout(t: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if kind == "noncontiguous":  # every other column of a wider tensor
        wide = torch.cat([t, t], dim=-1)
        return wide[..., ::2]
    return t.contiguous()


def device_for(backend: str) -> str:
    """Triton kernels run on CUDA tensors where a GPU is present, on the CPU under ``TRITON_INTERPRET=1``."""
    gpu = backend == "triton" and torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1"
    return "cuda" if gpu else "cpu"


def _cpu(t):
    return None if t is None else t.cpu()


def run(backend, x, y, w, *, normalize, kind, spatial=False, weight_grad=True):
    device = device_for(backend)
    # detach, not clone: a clone of a strided view is contiguous, and the layout is what some tests are about
    x = x.detach().to(device).requires_grad_()
    y = y.detach().to(device).requires_grad_()
    w = None if w is None else w.detach().to(device).clone().requires_grad_(weight_grad)
    out = feature_distance(x, y, w, normalize=normalize, kind=kind, spatial=spatial, backend=backend)
    # A non-uniform upstream gradient, so every per-pixel / per-sample path is exercised.
    upstream = torch.linspace(0.5, 1.5, out.numel(), device=out.device).view_as(out)
    (out * upstream).sum().backward()
    return out.detach().cpu(), _cpu(x.grad), _cpu(y.grad), None if w is None else _cpu(w.grad)


def compare(backend, shape, *, kind, normalize, weighted=True, dtype=torch.float32, memory="contiguous", spatial=False):
    torch.manual_seed(0)
    device = device_for(backend)
    x = layout(torch.randn(shape, dtype=dtype).to(device), memory)
    y = layout(torch.randn(shape, dtype=dtype).to(device), memory)
    w = torch.rand(shape[1]) + 0.1 if weighted else None
    got = run(backend, x, y, w, normalize=normalize, kind=kind, spatial=spatial)
    ref = run("reference", x.double(), y.double(), None if w is None else w.double(), normalize=normalize, kind=kind,
              spatial=spatial)  # fmt: skip
    tol = TOL[dtype] * (10 if normalize and shape[1] == 1 else 1)  # C = 1: the true gradient is 0, all is rounding
    for name, a, b in zip(("out", "grad x", "grad y", "grad w"), got, ref, strict=True):
        if b is None:
            assert a is None
            continue
        assert a.dtype == (b.dtype if name == "grad w" else dtype) or name in ("out", "grad w")
        scale = max(1.0, float(b.abs().max()))
        err = float((a.double() - b).abs().max())
        assert err <= tol * scale, f"{backend} {name}: max error {err:.3g} > {tol * scale:.3g}"


SHAPES = [(2, 3, 7, 13), (2, 65, 1, 1), (1, 1, 5, 5), (3, 16, 4, 4)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_eager_matches_reference(shape, kind, normalize, weighted):
    compare("eager", shape, kind=kind, normalize=normalize, weighted=weighted)


@needs_triton
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_triton_matches_reference(shape, kind, normalize, weighted):
    compare("triton", shape, kind=kind, normalize=normalize, weighted=weighted)


@pytest.mark.parametrize("backend", ["eager", pytest.param("triton", marks=needs_triton)])
@pytest.mark.parametrize("memory", ["channels_last", "noncontiguous"])
@pytest.mark.parametrize("kind", KINDS)
def test_layouts(backend, memory, kind):
    compare(backend, (2, 5, 6, 7), kind=kind, normalize=True, memory=memory)


@pytest.mark.parametrize("backend", ["eager", pytest.param("triton", marks=needs_triton)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", KINDS)
def test_half_precision_accumulates_in_float32(backend, dtype, kind):
    compare(backend, (2, 24, 5, 6), kind=kind, normalize=True, dtype=dtype)
    x = torch.randn(2, 24, 5, 6, dtype=dtype, device=device_for(backend))
    assert feature_distance(x, x.flip(0), kind=kind, backend=backend).dtype == torch.float32


@pytest.mark.parametrize("backend", ["eager", pytest.param("triton", marks=needs_triton)])
@pytest.mark.parametrize("kind", KINDS)
def test_spatial_map(backend, kind):
    compare(backend, (2, 8, 5, 7), kind=kind, normalize=True, spatial=True)


@pytest.mark.parametrize("kind", KINDS[:2])
def test_compiled_matches_reference(kind):
    compare("compiled", (2, 16, 9, 11), kind=kind, normalize=True)
    compare("compiled", (3, 16, 5, 6), kind=kind, normalize=True)  # a second shape reuses or recompiles cleanly


ZERO_CASES = [
    *[("eager", kind, normalize) for kind in KINDS for normalize in (False, True)],
    *[pytest.param("triton", kind, normalize, marks=needs_triton) for kind in KINDS for normalize in (False, True)],
    ("compiled", "sq", True),  # one compiled case: compiling each variant costs seconds
]


@pytest.mark.parametrize(("backend", "kind", "normalize"), ZERO_CASES)
def test_zero_vectors_give_zero_and_finite_gradients(backend, kind, normalize):
    z = torch.zeros(2, 6, 3, 3)
    out, gx, gy, gw = run(backend, z, z, torch.rand(6), normalize=normalize, kind=kind)
    assert torch.all(out.abs() <= 1e-6), out
    for g in (gx, gy, gw):
        assert torch.isfinite(g).all()


def test_gradcheck_float64_autograd_function():
    torch.manual_seed(0)
    for kind in KINDS:
        for normalize in (False, True):
            x = torch.randn(2, 4, 3, 2, dtype=torch.float64, requires_grad=True)
            y = torch.randn(2, 4, 3, 2, dtype=torch.float64, requires_grad=True)
            w = (torch.rand(4, dtype=torch.float64) + 0.5).requires_grad_()
            if kind == "abs":  # |d| is not differentiable at 0; keep differences away from it
                y = (x.detach() + torch.sign(torch.randn_like(x)) * (0.5 + torch.rand_like(x))).requires_grad_()

            def fn(a, b, c, kind=kind, normalize=normalize):
                return FeatureDistanceFunction.apply(a, b, c, normalize, kind, "eager")[0]

            assert torch.autograd.gradcheck(fn, (x, y, w), eps=1e-6, atol=1e-6)


def saved_tensor_sizes(fn, *args) -> list[torch.Size]:
    sizes: list[torch.Size] = []

    def pack(t):
        sizes.append(t.shape)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args)
    out.sum().backward()
    return sizes


@pytest.mark.parametrize("backend", ["eager", pytest.param("triton", marks=needs_triton)])
@pytest.mark.parametrize("kind", KINDS)
def test_graph_keeps_only_inputs_and_per_pixel_statistics(backend, kind):
    n, c, h, w = 2, 32, 6, 5
    device = device_for(backend)
    x = torch.randn(n, c, h, w, device=device, requires_grad=True)
    y = torch.randn(n, c, h, w, device=device, requires_grad=True)
    weight = torch.rand(c, device=device, requires_grad=True)

    def fused(a, b, ww):
        return feature_distance(a, b, ww, normalize=True, kind=kind, backend=backend)

    def reference(a, b, ww):
        return feature_distance(a, b, ww, normalize=True, kind=kind, backend="reference")

    sizes = saved_tensor_sizes(fused, x, y, weight)
    big = [s for s in sizes if s.numel() >= n * c * h * w]
    assert len(big) == 2, sizes  # x and y themselves, nothing else of that size
    assert all(s.numel() <= max(n * h * w, c) for s in sizes if s not in big), sizes
    # The measurement can tell the difference: plain autograd keeps full-size temporaries.
    assert len([s for s in saved_tensor_sizes(reference, x, y, weight) if s.numel() >= n * c * h * w]) > 2


def test_no_graph_when_nothing_needs_grad():
    x, y = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    assert feature_distance(x, y, normalize=True, backend="eager").grad_fn is None


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("0", "reference"), ("reference", "reference"), ("eager", "eager"), ("1", "compiled"), ("auto", "eager")],
)
def test_dispatch_on_cpu(monkeypatch, mode, expected):
    monkeypatch.setenv("PERCEPT_FUSED", mode)
    assert choose_backend(torch.zeros(2, 8, 4, 4)) == expected


def test_auto_compiles_large_cpu_inputs(monkeypatch):
    monkeypatch.setenv("PERCEPT_FUSED", "auto")
    assert choose_backend(torch.empty(1, 64, 128, 128)) == "compiled"


def test_bad_mode(monkeypatch):
    monkeypatch.setenv("PERCEPT_FUSED", "fast")
    with pytest.raises(ValueError, match="PERCEPT_FUSED must be"):
        choose_backend(torch.zeros(1, 1, 1, 1))


@pytest.mark.parametrize("value", ["fast", "2", "cuda", " eagerly "])
def test_unknown_setting_is_one_input_error_naming_the_allowed_values(monkeypatch, value):
    from percept.errors import InputError
    from percept.ops import SETTINGS, fused_setting

    monkeypatch.setenv("PERCEPT_FUSED", value)
    with pytest.raises(InputError) as info:
        fused_setting()
    message = str(info.value)
    assert repr(value) in message and all(s in message for s in SETTINGS), message
    assert info.value.__cause__ is None and info.value.__context__ is None  # one error, no chained traceback


@pytest.mark.parametrize(("value", "expected"), [("", "auto"), ("  ", "auto"), ("AUTO", "auto"), ("Off", "0"),
                                                 ("yes", "1"), ("Compiled", "compiled")])  # fmt: skip
def test_empty_setting_is_the_default(monkeypatch, value, expected):
    from percept.ops import fused_setting

    monkeypatch.setenv("PERCEPT_FUSED", value)
    assert fused_setting() == expected
    x = torch.zeros(2, 8, 4, 4)
    if expected == "auto":
        monkeypatch.delenv("PERCEPT_FUSED")
        unset = choose_backend(x)
        monkeypatch.setenv("PERCEPT_FUSED", value)
        assert choose_backend(x) == unset


def test_unknown_backend_argument(monkeypatch):
    from percept.errors import InputError

    with pytest.raises(InputError, match="backend must be one of"):
        feature_distance(torch.zeros(1, 2), torch.zeros(1, 2), backend="fast")


def test_loss_fails_at_construction_not_per_call(monkeypatch):
    import percept
    from percept.errors import InputError

    monkeypatch.setenv("PERCEPT_FUSED", "fused")
    with pytest.raises(InputError, match="PERCEPT_FUSED must be one of"):
        percept.PerceptualLoss("alexnet:conv1", weights=None)


def test_backends_listed():
    assert set(BACKENDS) == {"reference", "eager", "compiled", "triton"}


def test_vectors_are_one_pixel_maps():
    x, y = torch.randn(3, 10), torch.randn(3, 10)
    torch.testing.assert_close(
        feature_distance(x, y, backend="eager"), feature_distance_reference(x[..., None, None], y[..., None, None])
    )


@cuda
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_triton_on_cuda(kind, dtype):
    torch.manual_seed(0)
    x = torch.randn(4, 64, 33, 31, device="cuda", dtype=dtype)
    y = torch.randn_like(x)
    w = torch.rand(64, device="cuda")
    got = run("triton", x, y, w, normalize=True, kind=kind)
    ref = run("reference", x.double(), y.double(), w.double(), normalize=True, kind=kind)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a.double(), b, atol=TOL[dtype] * 10, rtol=TOL[dtype] * 10)


@pytest.mark.parametrize("backend", ["eager", "compiled", pytest.param("triton", marks=needs_triton)])
def test_target_without_grad_gets_none_and_x_grad_matches(backend):
    torch.manual_seed(0)
    x = torch.randn(2, 16, 9, 11, device=device_for(backend), requires_grad=True)
    y = torch.randn(2, 16, 9, 11, device=device_for(backend))
    feature_distance(x, y, normalize=True, backend=backend).sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    feature_distance_reference(x_ref, y, normalize=True).sum().backward()
    assert y.grad is None
    torch.testing.assert_close(x.grad, x_ref.grad, atol=2e-5, rtol=1e-4)


def test_lpips_and_builtin_distances_run_through_the_fused_op(monkeypatch):
    import warnings

    import percept
    from percept.ops import fused

    calls = []
    original = fused.fused_feature_distance
    monkeypatch.setattr(fused, "fused_feature_distance", lambda *a, **k: calls.append(k["kind"]) or original(*a, **k))
    monkeypatch.setattr(percept.ops, "fused_feature_distance", fused.fused_feature_distance)
    monkeypatch.setenv("PERCEPT_FUSED", "auto")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", percept.RandomWeightsWarning)
        lpips = percept.build_pipeline("lpips-alex", weights=None)
        cosine = percept.build_pipeline("alexnet:conv1/unit/cosine", weights=None)
    x, y = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    lpips(x, y)
    cosine(x, y)
    assert calls == ["sq"] * 5 + ["cos"]


@pytest.mark.parametrize("kind", ["sq", "abs", "cos"])
@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("hw", [(1, 1), (4, 4), (64, 65)])  # plain reductions; the per-sample matrix products
def test_eager_op_scores_a_sample_the_same_alone_and_in_a_batch(kind, weighted, hw):
    """Bit for bit, forward and backward: a batched matrix product would round by the batch's size."""
    torch.manual_seed(0)
    x, y = torch.rand(5, 512, *hw), torch.rand(5, 512, *hw)
    w = torch.rand(512) if weighted else None

    def run(a, b):
        a = a.clone().requires_grad_()
        out = feature_distance(a, b, w, normalize=True, kind=kind, backend="eager")
        out.sum().backward()
        return out.detach(), a.grad

    batched = run(x, y)
    alone = [run(x[i : i + 1], y[i : i + 1]) for i in range(5)]
    assert torch.equal(batched[0], torch.cat([o for o, _ in alone]))
    assert torch.equal(batched[1], torch.cat([g for _, g in alone]))


def test_eager_workspace_is_kept_bounded_never_returned_and_released(monkeypatch):
    """The eager form keeps its intermediate maps between calls (CPU), within WORKSPACE_BYTES per thread; what
    it returns (values, statistics, gradients) is never one of them, so a later call cannot overwrite it."""
    from percept.ops import fused_eager

    release_workspace()
    x, y, w = torch.rand(2, 16, 8, 8), torch.rand(2, 16, 8, 8), torch.rand(16)
    a = x.clone().requires_grad_()
    first = feature_distance(a, y, w, normalize=True, backend="eager", spatial=True)
    first.sum().backward()
    kept_values, kept_grad = first.detach().clone(), a.grad.clone()
    pool = fused_eager._workspace.pool
    held = {t.data_ptr() for t in pool.values()}
    assert held and first.data_ptr() not in held and a.grad.data_ptr() not in held
    b = torch.rand(2, 16, 8, 8).requires_grad_()  # a second call of the same shape reuses the buffers
    feature_distance(b, torch.rand(2, 16, 8, 8), w, normalize=True, backend="eager").sum().backward()
    assert {t.data_ptr() for t in pool.values()} == held
    assert torch.equal(first.detach(), kept_values) and torch.equal(a.grad, kept_grad)  # untouched
    per_buffer = x.numel() * x.element_size()
    monkeypatch.setattr(fused_eager, "WORKSPACE_BYTES", 3 * per_buffer)
    feature_distance(torch.rand(2, 16, 8, 9), torch.rand(2, 16, 8, 9), w, normalize=True, backend="eager")
    assert sum(t.numel() * t.element_size() for t in pool.values()) <= 3 * per_buffer
    assert release_workspace() > 0 and release_workspace() == 0


def test_eager_workspace_is_per_thread():
    import threading

    from percept.ops import fused_eager

    release_workspace()
    x, y = torch.rand(2, 16, 8, 8), torch.rand(2, 16, 8, 8)
    feature_distance(x, y, normalize=True, backend="eager")
    mine = {t.data_ptr() for t in fused_eager._workspace.pool.values()}
    theirs: list[set[int]] = []

    def other() -> None:
        feature_distance(x, y, normalize=True, backend="eager")
        theirs.append({t.data_ptr() for t in fused_eager._workspace.pool.values()})
        release_workspace()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert theirs and not (theirs[0] & mine)
    release_workspace()
