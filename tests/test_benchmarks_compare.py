"""benchmarks/compare.py builds every peer offline, as a module holding its network; each runs fwd and bwd."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
compare = pytest.importorskip("compare")

PAIRS = [(case, impl) for case, impls in compare.IMPLS.items() for impl in impls]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(("case", "impl"), PAIRS, ids=[f"{c}-{i}" for c, i in PAIRS])
def test_every_peer_builds_and_differentiates(case, impl):
    if impl in ("lpips", "DISTS_pytorch", "piq"):
        pytest.importorskip(impl)
    loss = compare.build(case, impl)
    # The network is part of the returned module, so .to("cuda") moves it with the inputs.
    assert sum(p.numel() for p in loss.parameters()) > 10_000
    x, y = compare.inputs(1, 64, "cpu")
    value = loss(x, y)
    value.backward()
    assert value.dim() == 0 and math.isfinite(value.item())
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and x.grad.abs().sum() > 0
