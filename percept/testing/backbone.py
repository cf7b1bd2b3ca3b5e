"""The backbone contract, as small named checks that :func:`check_backbone` runs in order."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from percept.backbones.base import Backbone
from percept.errors import InputError, RandomWeightsWarning, SpecError
from percept.testing.checker import Checker, ContractReport, lookup


def check_backbone(
    backbone: str | Backbone | Callable[..., Backbone],
    *,
    size: int | None = None,
    batch: int = 2,
    seed: int = 0,
    **factory_kwargs: Any,
) -> ContractReport:
    """Check that a backbone produces the taps it declares and keeps percept's backbone contract.

    Args:
        backbone: a registered backbone name (built with ``weights=None``), a factory called as
            ``factory(weights=None, **factory_kwargs)``, or a :class:`~percept.backbones.Backbone`.
        size: image height and width to run (default: the larger of 32 and the smallest size every
            declared tap needs).
        batch: batch size of the test images (at least 2, for the batch-independence check).
        seed: seed of the test images.
        **factory_kwargs: passed to the factory (e.g. ``input_range=(-1, 1)``).

    Returns:
        The :class:`ContractReport` of the checks that passed.

    Raises:
        ContractError: a check failed; the message names the backbone, the check and the mismatch.

    Example:
        >>> check_backbone("alexnet").passed[:3]  # doctest: +SKIP
        ['returns a Backbone', 'declares taps', 'frozen']
    """
    if batch < 2:
        raise InputError(f"check_backbone needs batch >= 2 to check batch independence, got {batch}")
    name, subject = lookup("backbone", backbone)
    c = Checker("backbone", name)
    bb = _built(c, subject, factory_kwargs)
    check_declared_taps(c, bb)
    check_frozen(c, bb)
    names = [t.name for t in bb.feature_info]
    min_size = bb.min_size(names)
    size = max(32, min_size) if size is None else size
    c.expect(size >= min_size, "runs", f"size {size} is below the backbone's min_size {min_size} for its taps")
    low, high = bb.input_range
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * (high - low) + low
    out = check_produces_declared_taps(c, bb, x)
    check_independence(c, bb, x, out)
    check_stops_at_deepest_tap(c, bb, x)
    check_gradients_reach_the_image(c, bb, x)
    check_bad_input(c, bb, x)
    return c.report


def _built(c: Checker, subject: Any, factory_kwargs: dict[str, Any]) -> Backbone:
    """The backbone itself, or what the factory builds with random weights (frozen, as create_backbone does)."""
    if not isinstance(subject, Backbone):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            subject = subject(weights=None, **factory_kwargs)
        c.expect(
            isinstance(subject, Backbone),
            "returns a Backbone",
            f"the factory returned {type(subject).__name__}, expected a percept.backbones.Backbone",
        )
        subject = subject.eval().requires_grad_(False)  # what create_backbone does
    c.ok("returns a Backbone")
    return subject


def check_declared_taps(c: Checker, bb: Backbone) -> None:
    """``feature_info`` is not empty, names are unique, channels and reductions >= 1, a canonical tap exists."""
    infos = bb.feature_info
    c.expect(bool(infos), "declares taps", "feature_info is empty; declare taps as (name, module path, canonical)")
    names = [t.name for t in infos]
    c.expect(len(set(names)) == len(names), "declares taps", f"tap names are not unique: {names}")
    for t in infos:
        c.expect(
            t.channels > 0 and t.reduction >= 1,
            "declares taps",
            f"tap {t.name!r} declares {t.channels} channels and reduction {t.reduction}; expected both >= 1",
        )
    c.expect(bool(bb.canonical_taps), "declares taps", "no canonical tap: mark at least one (what 'all' means)")
    c.ok("declares taps")


def check_frozen(c: Checker, bb: Backbone) -> None:
    """No parameter requires gradients, and ``.train()`` leaves the network in eval mode."""
    c.expect(not any(p.requires_grad for p in bb.parameters()), "frozen", "some parameters still require gradients")
    bb.train()
    c.expect(not bb.training, "frozen", "the backbone left eval mode under .train()")
    c.ok("frozen")


def check_produces_declared_taps(c: Checker, bb: Backbone, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every declared tap comes back, in order, with its channels, about its reduction, same dtype, finite."""
    infos = bb.feature_info
    names = [t.name for t in infos]
    batch, size = x.shape[0], x.shape[-1]
    with torch.no_grad():
        out = bb(x, names)
    c.expect(isinstance(out, dict), "produces declared taps", f"forward returned {type(out).__name__}, expected dict")
    c.expect(list(out) == names, "produces declared taps", f"asked for {names}, got {list(out)}")
    for t in infos:
        f = out[t.name]
        c.expect(
            isinstance(f, torch.Tensor) and f.dim() == 4 and tuple(f.shape[:2]) == (batch, t.channels),
            "produces declared taps",
            f"tap {t.name!r} declares {t.channels} channels: expected shape ({batch}, {t.channels}, h, w), got "
            f"{tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__}",
        )
        ratio = size / max(f.shape[-1], 1)
        # Nominal strides: padding and valid convolutions move small maps by a few pixels.
        c.expect(
            abs(math.log2(ratio / t.reduction)) <= 1.0 or abs(f.shape[-1] - size / t.reduction) <= 3,
            "produces declared taps",
            f"tap {t.name!r} declares reduction {t.reduction}, but a {size}x{size} input gives width {f.shape[-1]}",
        )
        c.expect(f.dtype == x.dtype, "dtype", f"tap {t.name!r} is {f.dtype} for {x.dtype} input")
        c.expect(bool(torch.isfinite(f).all()), "finite", f"tap {t.name!r} holds NaN or Inf")
    c.ok("produces declared taps")
    c.ok("dtype")
    c.ok("finite")
    return out


def check_independence(c: Checker, bb: Backbone, x: torch.Tensor, out: dict[str, torch.Tensor]) -> None:
    """A tap asked alone equals it asked with every tap; a sample alone equals it in the batch."""
    canonical = bb.canonical_taps
    with torch.no_grad():
        for tap in canonical:
            alone = bb(x, [tap])[tap]
            c.close("taps independent of each other", alone, out[tap], f"tap {tap!r} asked alone vs with every tap")
        for i in range(x.shape[0]):
            single = bb(x[i : i + 1], canonical)
            for tap in canonical:
                c.close(
                    "batch independence", single[tap], out[tap][i : i + 1], f"tap {tap!r}, sample {i} alone vs batched"
                )
    c.ok("taps independent of each other")
    c.ok("batch independence")


def check_stops_at_deepest_tap(c: Checker, bb: Backbone, x: torch.Tensor) -> None:
    """Asking for the shallowest tap runs no stage after it."""
    shallow = min(bb.feature_info, key=lambda t: t.index)
    ran: list[int] = []
    hooks = [m.register_forward_hook(lambda *_, i=i: ran.append(i)) for i, (_, m) in enumerate(bb._stages)]
    try:
        with torch.no_grad():
            bb(x[:1], [shallow.name])
    finally:
        for h in hooks:
            h.remove()
    c.expect(
        not ran or max(ran) <= shallow.index,
        "stops at the deepest tap",
        f"asking for {shallow.name!r} (stage {shallow.index}) ran stage {max(ran) if ran else None}",
    )
    c.ok("stops at the deepest tap")


def check_gradients_reach_the_image(c: Checker, bb: Backbone, x: torch.Tensor) -> None:
    """The canonical taps carry a finite, non-zero gradient back to the input image."""
    xg = x[:1].clone().requires_grad_(True)
    feats = bb(xg, bb.canonical_taps)
    total = sum(f.float().square().mean() for f in feats.values())
    c.expect(total.requires_grad, "gradients reach the image", "the taps are detached from the input's graph")
    total.backward()
    if xg.grad is None:
        c.fail("gradients reach the image", "no gradient reached the input")
    c.expect(bool(torch.isfinite(xg.grad).all()), "gradients reach the image", "the input gradient has NaN/Inf")
    c.expect(bool(xg.grad.abs().sum() > 0), "gradients reach the image", "the input gradient is all zero")
    c.ok("gradients reach the image")


def check_bad_input(c: Checker, bb: Backbone, x: torch.Tensor) -> None:
    """An unknown tap raises SpecError; no batch, 2 channels, uint8 or a too small image raise InputError."""
    names = [t.name for t in bb.feature_info]
    min_size = bb.min_size(names)
    c.raises("bad input", (SpecError,), lambda: bb(x, ["no-such-tap-for-percept-testing"]), "an unknown tap")
    c.raises("bad input", (InputError,), lambda: bb.check_input(x[0], names), "a (C, H, W) tensor without batch")
    c.raises("bad input", (InputError,), lambda: bb.check_input(x[:, :2], names), "a 2-channel batch")
    c.raises(
        "bad input", (InputError,), lambda: bb.check_input((x * 255).round().to(torch.uint8), names), "a uint8 batch"
    )
    if min_size > 1:
        tiny = x[:, :, : min_size - 1, : min_size - 1]
        c.raises("bad input", (InputError,), lambda: bb.check_input(tiny, names), "an image smaller than min_size")
    c.ok("bad input")
