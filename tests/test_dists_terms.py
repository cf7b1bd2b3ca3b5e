"""DISTS' per-channel terms: the hand-written backward against autograd of the textbook formulas."""

from __future__ import annotations

import pytest
import torch

from percept.ops.dists import C1, C2, dists_terms


def textbook(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    am, bm = a.mean([2, 3], keepdim=True), b.mean([2, 3], keepdim=True)
    texture = (2 * am * bm + C1) / (am**2 + bm**2 + C1)
    av, bv = ((a - am) ** 2).mean([2, 3], keepdim=True), ((b - bm) ** 2).mean([2, 3], keepdim=True)
    cov = ((a - am) * (b - bm)).mean([2, 3], keepdim=True)
    return texture.flatten(1), ((2 * cov + C2) / (av + bv + C2)).flatten(1)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 4, 1, 1), (3, 2, 1, 6)])
def test_gradcheck_float64(shape):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(shape, dtype=torch.float64, generator=g).requires_grad_()
    b = torch.rand(shape, dtype=torch.float64, generator=g).requires_grad_()
    assert torch.autograd.gradcheck(dists_terms, (a, b))
    assert torch.autograd.gradcheck(lambda x: dists_terms(x, b.detach()), (a,))


def test_matches_autograd_of_the_formulas_in_float32():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, 8, 16, 16, generator=g).requires_grad_()
    b = torch.rand(3, 8, 16, 16, generator=g)
    weights = torch.rand(2, 8, generator=g)
    ours, want = dists_terms(a, b), textbook(a, b)
    for x, y in zip(ours, want, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)
    (g1,) = torch.autograd.grad((ours[0] * weights[0] + ours[1] * weights[1]).sum(), a)
    (g2,) = torch.autograd.grad((want[0] * weights[0] + want[1] * weights[1]).sum(), a)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-7)


def test_identical_features_are_exactly_similar_and_nothing_large_is_saved():
    x = torch.rand(2, 6, 9, 9).requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        texture, structure = dists_terms(x, x.detach().clone())
    assert bool((texture == 1).all()) and bool((structure == 1).all())
    large = [t for t in saved if t.numel() >= x.numel()]
    assert len(large) == 2  # the two inputs, nothing else of their size


def test_half_precision_accumulates_in_float32():
    x = torch.rand(2, 4, 6, 6).half().requires_grad_()
    texture, structure = dists_terms(x, (x.detach() + 0.01).clamp(max=1))
    assert texture.dtype == structure.dtype == torch.float32
    (texture + structure).sum().backward()
    assert x.grad.dtype == torch.float16 and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("block", [5, 7, 64, 1 << 19])
def test_blocked_statistics_agree_with_the_formulas(monkeypatch, block):
    """The statistics run in blocks of rows and columns (one row split across blocks when it is longer
    than a block); every blocking gives the textbook values, and identical maps stay exactly similar."""
    import percept.ops.dists as dists

    monkeypatch.setattr(dists, "_BLOCK", block)
    g = torch.Generator().manual_seed(2)
    a = torch.rand(3, 5, 4, 6, generator=g, dtype=torch.float64)
    b = (a + 0.1 * torch.randn(3, 5, 4, 6, generator=g, dtype=torch.float64)).clamp(0, 1)
    for x, y in zip(dists_terms(a, b), textbook(a, b), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
    assert bool((dists_terms(a, a.clone())[1] == 1).all())


def test_nearly_identical_maps_lose_less_to_rounding_than_the_formula():
    """``1 - s = var(a - b) / (s_a^2 + s_b^2 + c2)`` in float32 is nearer float64 than the centred
    textbook formula in float32 (whose ``2 cov`` and ``s_a^2 + s_b^2`` nearly cancel)."""
    g = torch.Generator().manual_seed(3)
    a = torch.rand(1, 16, 32, 32, generator=g, dtype=torch.float64) + 10
    b = a + 1e-2 * torch.randn(1, 16, 32, 32, generator=g, dtype=torch.float64)
    want = 1 - textbook(a, b)[1]
    ours = ((1 - dists_terms(a.float(), b.float())[1].double() - want) / want).abs().max().item()
    formula = ((1 - textbook(a.float(), b.float())[1].double() - want) / want).abs().max().item()
    assert ours < 1e-3 and ours < formula


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_agrees_with_cpu():
    """On a GPU the statistics run in larger blocks and L2 pooling's backward on cuDNN: same values."""
    from percept.builtin.dists import L2Pool

    g = torch.Generator().manual_seed(4)
    a = torch.rand(2, 8, 40, 40, generator=g).requires_grad_()
    b = torch.rand(2, 8, 40, 40, generator=g)
    pool = L2Pool()
    results = []
    for device in ("cpu", "cuda"):
        x = a.detach().to(device).requires_grad_()
        texture, structure = dists_terms(pool.to(device)(x), pool(b.to(device)))
        (texture.sum() + structure.sum()).backward()
        results.append((texture.cpu(), structure.cpu(), x.grad.cpu()))
    for cpu, cuda in zip(*results, strict=True):
        torch.testing.assert_close(cuda, cpu, rtol=1e-4, atol=1e-6)
