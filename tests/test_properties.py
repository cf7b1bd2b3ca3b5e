"""The laws every built-in readout x distance keeps, checked with hypothesis.

For every pair of registered readout and distance, on whole pipelines (a small random AlexNet,
``alexnet:conv1,conv2/<readout>/<distance>``) and directly on feature tensors:

* identity: ``d(x, x) = 0`` (within 1e-6);
* non-negativity: ``d(x, y) >= 0``;
* symmetry: ``d(x, y) = d(y, x)`` where the distance says it is symmetric;
* batch independence: a batch scores as its samples scored one by one;
* finite gradients at ``x == y``, including all-zero feature maps in the fused op.

``gradcheck`` in float64 checks the fused op's reference against finite differences.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import percept
from percept.distances.base import Distance, FusedDistance
from percept.ops import KINDS, feature_distance, feature_distance_reference
from percept.readouts.base import ChannelWeightedReadout, Readout
from percept.registry import get_registry

pytestmark = pytest.mark.filterwarnings("ignore::percept.RandomWeightsWarning")

COMBOS = list(itertools.product(percept.list_readouts(), percept.list_distances()))
COMBO_IDS = [f"{r}/{d}" for r, d in COMBOS]
MAX_SIZE = 40
ZERO_TOL = 1e-6
# Pipelines run a network per example: fewer examples there; feature-level laws are cheap.
properties = settings(max_examples=10, deadline=None)
feature_properties = settings(max_examples=25, deadline=None)


# -- strategies ----------------------------------------------------------------------------------


@dataclass
class Pair:
    """Two tensors drawn by a strategy; shown in hypothesis reports by how they were made, not in full."""

    x: torch.Tensor = field(repr=False)
    y: torch.Tensor = field(repr=False)
    how: str

    def __repr__(self) -> str:
        return f"Pair({self.how}, shape={tuple(self.x.shape)})"


@st.composite
def image_pairs(draw, min_size: int, min_batch: int = 1) -> Pair:
    """Two image batches in [0, 1]: unrelated, nearly equal, flat against textured, or binary."""
    n = draw(st.integers(min_batch, 3))
    c = draw(st.sampled_from([3, 3, 1]))
    h, w = draw(st.integers(min_size, MAX_SIZE)), draw(st.integers(min_size, MAX_SIZE))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    shape = (n, c, h, w)
    x = torch.rand(shape, generator=g)
    kind = draw(st.sampled_from(["random", "close", "flat", "binary"]))
    if kind == "random":
        y = torch.rand(shape, generator=g)
    elif kind == "close":
        y = (x + 1e-3 * torch.randn(shape, generator=g)).clamp(0, 1)
    elif kind == "flat":
        x = torch.full(shape, draw(st.sampled_from([0.0, 0.5, 1.0])))
        y = torch.rand(shape, generator=g)
    else:
        x = (x > 0.5).float()
        y = 1 - x
    swap = draw(st.booleans())
    return Pair(y, x, f"{kind}, swapped, seed={seed}") if swap else Pair(x, y, f"{kind}, seed={seed}")


@st.composite
def feature_pairs(draw) -> Pair:
    """Two feature tensors ``(N, C, H, W)`` or ``(N, C)``, some pixels all-zero, some post-ReLU."""
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 8))
    spatial = draw(st.booleans())
    shape = (n, c, draw(st.integers(1, 6)), draw(st.integers(1, 6))) if spatial else (n, c)
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    relu, holes = draw(st.booleans()), draw(st.booleans())
    if relu:
        x, y = x.relu(), y.relu()
    if holes:  # whole pixels at zero: unit-normalisation and cosine meet 0 / 0
        keep_shape = (n, 1, *shape[2:])
        x = x * (torch.rand(keep_shape, generator=g) > 0.3)
        y = y * (torch.rand(keep_shape, generator=g) > 0.3)
    return Pair(x, y, f"seed={seed}, relu={relu}, zero pixels={holes}")


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline_for() -> Iterator[Callable[[str, str], percept.Pipeline]]:
    """One small random AlexNet pipeline per readout x distance, built on first use."""
    cache: dict[tuple[str, str], percept.Pipeline] = {}

    def get(readout: str, distance: str) -> percept.Pipeline:
        if (readout, distance) not in cache:
            cache[readout, distance] = percept.build_pipeline(f"alexnet:conv1,conv2/{readout}/{distance}", weights=None)
        return cache[readout, distance]

    yield get
    cache.clear()


def make(readout: str, distance: str, channels: int) -> tuple[Readout, Distance]:
    registry = get_registry()
    return registry.get("readout", readout).factory(channels=channels), registry.get("distance", distance).factory()


def score(readout: Readout, distance: Distance, a: torch.Tensor, b: torch.Tensor, *, fused: bool) -> torch.Tensor:
    """What a pipeline computes for one tap: fused (raw features into the op) or readout, then distance."""
    if fused:
        return distance(a, b, weight=readout.channel_weight(), normalize=readout.normalize)
    return distance(readout(a), readout(b))


def paths(readout: Readout, distance: Distance) -> list[bool]:
    fusable = isinstance(distance, FusedDistance) and readout.fusable
    return [False, True] if fusable else [False]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


# -- pipelines -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("readout", "distance"), COMBOS, ids=COMBO_IDS)
@properties
@given(data=st.data())
def test_pipeline_identity_is_zero(pipeline_for, readout: str, distance: str, data) -> None:
    p = pipeline_for(readout, distance)
    x = data.draw(image_pairs(p.min_size)).x
    with torch.no_grad():
        d = p(x, x.clone())
    assert d.shape == (x.shape[0],)
    assert (d >= 0).all() and (d <= ZERO_TOL).all(), d


@pytest.mark.parametrize(("readout", "distance"), COMBOS, ids=COMBO_IDS)
@properties
@given(data=st.data())
def test_pipeline_non_negative_and_symmetric(pipeline_for, readout: str, distance: str, data) -> None:
    p = pipeline_for(readout, distance)
    pair = data.draw(image_pairs(p.min_size))
    x, y = pair.x, pair.y
    with torch.no_grad():
        d_xy = p(x, y)
        assert torch.isfinite(d_xy).all() and (d_xy >= 0).all(), d_xy
        if p.distance.symmetric:
            assert_close(p(y, x), d_xy)


@pytest.mark.parametrize(("readout", "distance"), COMBOS, ids=COMBO_IDS)
@properties
@given(data=st.data())
def test_pipeline_batch_independence(pipeline_for, readout: str, distance: str, data) -> None:
    p = pipeline_for(readout, distance)
    pair = data.draw(image_pairs(p.min_size, min_batch=2))
    x, y = pair.x, pair.y
    with torch.no_grad():
        batched = p(x, y)
        one_by_one = torch.cat([p(x[i : i + 1], y[i : i + 1]) for i in range(x.shape[0])])
    assert_close(batched, one_by_one)


@pytest.mark.parametrize(("readout", "distance"), COMBOS, ids=COMBO_IDS)
@properties
@given(data=st.data())
def test_pipeline_gradient_finite_at_identity(pipeline_for, readout: str, distance: str, data) -> None:
    p = pipeline_for(readout, distance)
    x = data.draw(image_pairs(p.min_size)).x
    # Target without gradient (run without a graph), then both sides being the same leaf.
    x1 = x.clone().requires_grad_(True)
    p(x1, x.clone()).sum().backward()
    x2 = x.clone().requires_grad_(True)
    p(x2, x2).sum().backward()
    for grad in (x1.grad, x2.grad):
        assert grad is not None and torch.isfinite(grad).all()


# -- readout and distance objects on feature tensors ----------------------------------------------


@pytest.mark.parametrize(("readout", "distance"), COMBOS, ids=COMBO_IDS)
@feature_properties
@given(pair=feature_pairs())
def test_feature_laws(readout: str, distance: str, pair) -> None:
    a, b = pair.x, pair.y
    r, d = make(readout, distance, a.shape[1])
    results = []
    for fused in paths(r, d):
        d_ab = score(r, d, a, b, fused=fused)
        assert d_ab.shape == (a.shape[0],)
        assert torch.isfinite(d_ab).all() and (d_ab >= 0).all(), d_ab
        d_aa = score(r, d, a, a.clone(), fused=fused)
        assert (d_aa >= 0).all() and (d_aa <= ZERO_TOL).all(), d_aa
        if d.symmetric:
            assert_close(score(r, d, b, a, fused=fused), d_ab)
        one_by_one = torch.cat([score(r, d, a[i : i + 1], b[i : i + 1], fused=fused) for i in range(a.shape[0])])
        assert_close(d_ab, one_by_one)
        results.append(d_ab)
    # Fusing the readout into the distance changes nothing but the speed.
    for other in results[1:]:
        assert_close(other, results[0])


# Channel weights reach only the distances the fused op computes (a pipeline refuses the others).
FUSED_DISTANCES = [
    n for n in percept.list_distances() if isinstance(get_registry().get("distance", n).factory(), FusedDistance)
]


@pytest.mark.parametrize("distance", FUSED_DISTANCES)
@feature_properties
@given(pair=feature_pairs(), normalize=st.booleans())
def test_channel_weighted_readout_laws(distance: str, pair, normalize: bool) -> None:
    """An LPIPS-style head (non-negative channel weights) keeps the laws in the fused op."""
    a, b = pair.x, pair.y
    r = ChannelWeightedReadout(a.shape[1], torch.rand(a.shape[1]), normalize=normalize)
    d = get_registry().get("distance", distance).factory()
    d_ab = score(r, d, a, b, fused=True)
    assert torch.isfinite(d_ab).all() and (d_ab >= 0).all()
    assert (score(r, d, a, a.clone(), fused=True) <= ZERO_TOL).all()
    if d.symmetric:
        assert_close(score(r, d, b, a, fused=True), d_ab)
    one_by_one = torch.cat([score(r, d, a[i : i + 1], b[i : i + 1], fused=True) for i in range(a.shape[0])])
    assert_close(d_ab, one_by_one)


SPATIAL_DISTANCES = [
    n for n in percept.list_distances() if get_registry().get("distance", n).factory().supports_spatial
]


@pytest.mark.parametrize("distance", SPATIAL_DISTANCES)
@feature_properties
@given(pair=feature_pairs())
def test_spatial_map_averages_to_the_distance(distance: str, pair) -> None:
    a, b = pair.x, pair.y
    d = get_registry().get("distance", distance).factory()
    assume(d.supports_spatial and a.dim() == 4)
    dmap = d(a, b, spatial=True)
    assert dmap.shape == (a.shape[0], 1, *a.shape[2:])
    assert_close(dmap.mean(dim=(-2, -1)).flatten(), d(a, b))


# -- the fused op at its edges -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("normalize", [False, True], ids=["plain", "normalize"])
@pytest.mark.parametrize(
    ("shape", "spatial"),
    [((2, 4, 3, 5), False), ((2, 4, 3, 5), True), ((3, 6), False)],
    ids=["NCHW", "NCHW-spatial", "NC"],
)
def test_fused_op_zero_features_have_finite_gradients(kind, normalize, shape, spatial) -> None:
    x = torch.zeros(shape, requires_grad=True)
    y = torch.zeros(shape, requires_grad=True)
    w = torch.rand(shape[1], requires_grad=True)
    out = feature_distance(x, y, w, normalize=normalize, kind=kind, spatial=spatial)
    assert torch.isfinite(out).all() and (out >= 0).all() and (out <= ZERO_TOL).all(), out
    out.sum().backward()
    for t in (x, y, w):
        assert t.grad is not None and torch.isfinite(t.grad).all(), (kind, normalize, t.grad)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("normalize", [False, True], ids=["plain", "normalize"])
@feature_properties
@given(pair=feature_pairs())
def test_fused_op_gradients_finite_at_identity(kind, normalize, pair) -> None:
    a = pair.x  # may hold all-zero pixels
    x = a.clone().requires_grad_(True)
    y = a.clone().requires_grad_(True)
    w = torch.rand(a.shape[1], requires_grad=True)
    out = feature_distance(x, y, w, normalize=normalize, kind=kind)
    assert (out >= 0).all() and (out <= ZERO_TOL).all(), out
    out.sum().backward()
    for t in (x, y, w):
        assert t.grad is not None and torch.isfinite(t.grad).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("normalize", [False, True], ids=["plain", "normalize"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(
    ("layout", "spatial"),
    [("NCHW", False), ("NCHW", True), ("NC", False), ("non-contiguous", False), ("size-1", True)],
    ids=["NCHW", "NCHW-spatial", "NC", "non-contiguous", "size-1-spatial"],
)
def test_reference_gradcheck(kind, normalize, weighted, layout, spatial) -> None:
    g = torch.Generator().manual_seed(0)

    def feats() -> torch.Tensor:
        if layout == "NCHW":
            t = torch.randn(2, 3, 3, 4, generator=g, dtype=torch.float64)
        elif layout == "NC":
            t = torch.randn(3, 4, generator=g, dtype=torch.float64)
        elif layout == "non-contiguous":
            t = torch.randn(2, 3, 4, 3, generator=g, dtype=torch.float64).transpose(2, 3)
            assert not t.is_contiguous()
        else:
            t = torch.randn(1, 1, 1, 3, generator=g, dtype=torch.float64)
        return t.requires_grad_(True)

    x, y = feats(), feats()
    inputs = [x, y]
    if weighted:
        inputs.append((torch.rand(x.shape[1], generator=g, dtype=torch.float64) + 0.1).requires_grad_(True))

    def fn(*args):
        weight = args[2] if weighted else None
        return feature_distance_reference(args[0], args[1], weight, normalize=normalize, kind=kind, spatial=spatial)

    assert torch.autograd.gradcheck(fn, tuple(inputs), eps=1e-6, atol=1e-6, rtol=1e-4)
