"""The readout contract: :func:`check_readout` and the checks of one readout."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from percept.errors import InputError
from percept.ops import unit_normalize
from percept.readouts.base import Readout
from percept.testing.checker import Checker, ContractReport, features, lookup, summary


def check_readout(
    readout: str | Readout | Callable[..., Readout],
    *,
    channels: Sequence[int] = (1, 3, 16),
    spatial: tuple[int, int] = (6, 5),
    batch: int = 3,
    seed: int = 0,
) -> ContractReport:
    """Check that a readout keeps percept's readout contract.

    Args:
        readout: a registered readout name, a factory called as ``factory(channels=C)``, or one
            :class:`~percept.readouts.Readout` (then only its own channel count is tried: its
            ``channels`` attribute, else the size of its channel weights, else ``channels[0]``).
        channels: channel counts ``C`` to build and run the readout for.
        spatial: ``(H, W)`` of the test features.
        batch: batch size of the test features (at least 2).
        seed: seed of the test features.

    Returns:
        The :class:`ContractReport` of the checks that passed.

    Raises:
        ContractError: a check failed; the message names the readout, the check and the mismatch.

    Example:
        >>> check_readout("unit").passed[0]
        'returns a Readout'
    """
    if batch < 2:
        raise InputError(f"check_readout needs batch >= 2 to check batch independence, got {batch}")
    name, subject = lookup("readout", readout)
    c = Checker("readout", name)
    g = torch.Generator().manual_seed(seed)
    if isinstance(subject, Readout):
        weight = subject.channel_weight()
        own = getattr(subject, "channels", None)
        ch = own if isinstance(own, int) else weight.numel() if weight is not None else channels[0]
        made = [(ch, subject)]
    else:
        made = [(ch, subject(channels=ch)) for ch in channels]
    for ch, r in made:
        c.expect(isinstance(r, Readout), "returns a Readout", f"factory(channels={ch}) returned {type(r).__name__}")
    c.ok("returns a Readout")

    for ch, r in made:
        _check_one_readout(c, ch, r, batch, spatial, g)
    c.ok("channel weights")
    c.ok("output")
    c.ok("deterministic")
    c.ok("batch independence")
    if any(r.fusable for _, r in made):
        c.ok("fusable readout is what it declares")
    c.ok("gradients")
    return c.report


def _check_one_readout(
    c: Checker, ch: int, r: Readout, batch: int, spatial: tuple[int, int], g: torch.Generator
) -> None:
    """The readout contract for one readout of ``ch`` channels (the checks are marked passed by the caller)."""
    w = r.channel_weight()
    if w is not None:
        c.expect(
            tuple(w.shape) == (ch,) and bool((w >= 0).all()),
            "channel weights",
            f"channel_weight() must be None or ({ch},) non-negative, got {summary(w)}",
        )
    c.expect(
        not (w is not None and not r.fusable),
        "channel weights",
        "a readout with channel weights must be fusable (only the fused distances apply weights)",
    )
    f = features((batch, ch, *spatial), g)
    with torch.no_grad():
        out = r(f)
        again = r(f.clone())
    c.expect(isinstance(out, torch.Tensor), "output", f"forward returned {type(out).__name__}, expected a tensor")
    c.expect(
        out.dim() >= 2 and out.shape[0] == batch,
        "output",
        f"expected a batch of {batch} first, got shape {tuple(out.shape)} for input {tuple(f.shape)}",
    )
    c.expect(out.dtype == f.dtype, "output", f"{f.dtype} features gave {out.dtype}")
    c.expect(bool(torch.isfinite(out).all()), "output", f"non-finite output for C={ch}")
    c.close("deterministic", again, out, f"two calls on the same C={ch} features")
    with torch.no_grad():
        singles = torch.cat([r(f[i : i + 1]) for i in range(batch)])
    c.close("batch independence", singles, out, f"C={ch}: samples one by one vs batched")
    zeros = torch.zeros(1, ch, *spatial)
    with torch.no_grad():
        z = r(zeros)
    c.expect(bool(torch.isfinite(z).all()), "output", f"all-zero C={ch} features give NaN/Inf")
    if r.fusable:
        expected = unit_normalize(f) if r.normalize else f
        c.close(
            "fusable readout is what it declares",
            out,
            expected,
            f"fusable with normalize={r.normalize}, so forward must be "
            + ("unit_normalize" if r.normalize else "the identity"),
        )
    fg = f.clone().requires_grad_(True)
    y = r(fg)
    if y.requires_grad:
        y.float().square().sum().backward()
        c.expect(
            fg.grad is not None and bool(torch.isfinite(fg.grad).all()),
            "gradients",
            f"C={ch}: the feature gradient is missing or non-finite",
        )
