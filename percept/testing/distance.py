"""The distance contract: :func:`check_distance` and its named checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from percept.distances.base import Distance, FusedDistance
from percept.errors import InputError
from percept.readouts.base import Readout
from percept.testing.checker import ZERO_TOL, Checker, ContractReport, features, lookup


def check_distance(
    distance: str | Distance | Callable[..., Distance],
    *,
    shape: Sequence[int] = (3, 8, 6, 5),
    readout: Readout | None = None,
    seed: int = 0,
) -> ContractReport:
    """Check that a distance keeps percept's distance contract.

    Args:
        distance: a registered distance name, a factory called with no arguments, or a
            :class:`~percept.distances.Distance`.
        shape: ``(N, C, H, W)`` of the test features (``N >= 2``).
        readout: compare ``readout(a)`` with ``readout(b)``, as a pipeline does, for a distance that
            only makes sense on one readout's output.
        seed: seed of the test features.

    Returns:
        The :class:`ContractReport` of the checks that passed.

    Raises:
        ContractError: a check failed; the message names the distance, the check and the mismatch.

    Example:
        >>> report = check_distance("mse")
        >>> "symmetry" in report.passed and "identity" in report.passed
        True
    """
    shape = tuple(shape)
    if len(shape) < 2 or shape[0] < 2:
        raise InputError(f"check_distance needs features (N, C, ...) with N >= 2, got shape {shape}")
    name, subject = lookup("distance", distance)
    c = Checker("distance", name)
    d = subject if isinstance(subject, Distance) else subject()
    c.expect(isinstance(d, Distance), "returns a Distance", f"the factory returned {type(d).__name__}")
    c.ok("returns a Distance")
    n = shape[0]
    g = torch.Generator().manual_seed(seed)
    a_raw, b_raw = features(shape, g), features(shape, g)

    def prepare(t: torch.Tensor) -> torch.Tensor:
        return readout(t) if readout is not None else t

    a, b = prepare(a_raw), prepare(b_raw)
    d_ab = _check_values(c, d, a, b)
    _check_identity(c, d, a)
    if d.symmetric:
        with torch.no_grad():
            c.close("symmetry", d(b, a), d_ab, "d(b, a) vs d(a, b) (the distance declares symmetric = True)")
        c.ok("symmetry")
    with torch.no_grad():
        singles = torch.cat([d(a[i : i + 1], b[i : i + 1]) for i in range(n)])
    c.close("batch independence", singles, d_ab, "samples one by one vs batched")
    c.ok("batch independence")
    _check_gradients(c, d, a_raw, b, prepare)
    if d.supports_spatial and a.dim() == 4:
        _check_spatial_map(c, d, a, b, d_ab)
    _check_bad_input(c, d, a, b)
    if isinstance(d, FusedDistance):
        w = torch.rand(a.shape[1], generator=g)
        with torch.no_grad():
            dw = d(a, a.clone(), weight=w)
        c.expect(bool((dw.abs() <= ZERO_TOL).all()), "identity", f"with channel weights d(a, a) = {dw.tolist()}")
    return c.report


def _check_values(c: Checker, d: Distance, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """One finite, non-negative float per sample, not all zero for different features; ``d(a, b)``."""
    n = a.shape[0]
    with torch.no_grad():
        d_ab = d(a, b)
    c.expect(isinstance(d_ab, torch.Tensor), "one value per sample", f"returned {type(d_ab).__name__}")
    c.expect(tuple(d_ab.shape) == (n,), "one value per sample", f"expected shape ({n},), got {tuple(d_ab.shape)}")
    c.expect(d_ab.is_floating_point(), "one value per sample", f"expected floats, got {d_ab.dtype}")
    c.expect(bool(torch.isfinite(d_ab).all()), "finite", f"non-finite distances {d_ab.tolist()}")
    c.expect(bool((d_ab >= 0).all()), "non-negative", f"negative distances {d_ab.tolist()}")
    c.expect(bool((d_ab > 0).any()), "non-negative", f"different features all scored 0: {d_ab.tolist()}")
    c.ok("one value per sample")
    c.ok("finite")
    c.ok("non-negative")
    return d_ab


def _check_identity(c: Checker, d: Distance, a: torch.Tensor) -> None:
    """``d(a, a) = 0`` and ``d(0, 0) = 0`` within :data:`ZERO_TOL`."""
    with torch.no_grad():
        d_aa = d(a, a.clone())
        zero = d(torch.zeros_like(a), torch.zeros_like(a))
    for what, value in (("d(a, a)", d_aa), ("d(0, 0)", zero)):
        c.expect(
            bool(torch.isfinite(value).all() and (value.abs() <= ZERO_TOL).all()),
            "identity",
            f"{what} must be 0 (within {ZERO_TOL}), got {value.tolist()}",
        )
    c.ok("identity")


def _check_gradients(
    c: Checker, d: Distance, a_raw: torch.Tensor, b: torch.Tensor, prepare: Callable[[torch.Tensor], torch.Tensor]
) -> None:
    """A finite, non-zero gradient reaches the first input; at ``a == b`` it is finite."""
    ag = a_raw.clone().requires_grad_(True)
    d_grad = d(prepare(ag), b)
    c.expect(d_grad.requires_grad, "gradients", "the distance is detached from its first input's graph")
    d_grad.sum().backward()
    if ag.grad is None:
        c.fail("gradients", "no gradient reached the first input")
    c.expect(bool(torch.isfinite(ag.grad).all()), "gradients", "the gradient holds NaN/Inf")
    c.expect(bool(ag.grad.abs().sum() > 0), "gradients", "the gradient is all zero although a != b")
    at = a_raw.clone().requires_grad_(True)
    d(prepare(at), prepare(at)).sum().backward()
    c.expect(
        at.grad is not None and bool(torch.isfinite(at.grad).all()),
        "gradients",
        "the gradient at a == b is missing or non-finite",
    )
    c.ok("gradients")


def _check_spatial_map(c: Checker, d: Distance, a: torch.Tensor, b: torch.Tensor, d_ab: torch.Tensor) -> None:
    """``spatial=True`` gives an ``(N, 1, H, W)`` map whose mean is the distance."""
    n = a.shape[0]
    with torch.no_grad():
        dmap = d(a, b, spatial=True)
    c.expect(
        tuple(dmap.shape) == (n, 1, *a.shape[2:]),
        "spatial map",
        f"spatial=True must give ({n}, 1, {a.shape[2]}, {a.shape[3]}), got {tuple(dmap.shape)}",
    )
    c.close("spatial map", dmap.mean(dim=(-2, -1)).flatten(), d_ab, "the spatial map's mean vs the distance")
    c.ok("spatial map")


def _check_bad_input(c: Checker, d: Distance, a: torch.Tensor, b: torch.Tensor) -> None:
    """Inputs with different channel counts, and 1-d inputs, raise InputError."""
    # Features of one tap always share their channels; other sizes may be fine (Gram, distributions).
    if b.shape[1] > 1:
        other = b[:, :-1]
        c.raises(
            "bad input",
            (InputError,),
            lambda: d(a, other),
            f"inputs with different channels, shapes {tuple(a.shape)} and {tuple(other.shape)}",
        )
    c.raises("bad input", (InputError,), lambda: d(a.flatten(), b.flatten()), "1-d inputs")
    c.ok("bad input")
