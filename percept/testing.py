"""The contract every backbone, readout and distance must meet, as functions a test suite calls.

Plugin authors run these from their own pytest suite, importing them from :mod:`percept.plugin`;
percept's built-ins run the same checks (``tests/test_testing_kit.py``)::

    # tests/test_contract.py of a plugin package
    from percept.plugin import check_distance, check_plugin

    def test_my_distance_meets_the_contract():
        check_distance("my-distance")          # a registered name, a factory, or an instance

    def test_everything_my_plugin_registers():
        check_plugin("my_plugin")              # the entry-point name from pyproject.toml

Each ``check_*`` raises :class:`ContractError` (an ``AssertionError``, so pytest shows it as a test
failure) naming the object, the check and what was expected and what came, and returns a
:class:`ContractReport` listing the checks that passed. The checks:

* backbones: taps are declared (names unique, channels and reductions positive, canonical taps
  exist); every declared tap is produced, in the order asked for, with the declared channels and
  roughly the declared reduction; floats in, same floats out, finite; a batch gives what its
  samples give one by one; asking for several taps gives each what it gives alone (no in-place
  layer overwrote it); the pass stops at the deepest tap asked for; gradients reach the image; the
  network is frozen and stays in eval mode; bad input (unknown tap, wrong rank or channels, too
  small) fails with percept's errors;
* readouts: made by ``factory(channels=C)`` for several ``C``; deterministic, batch-independent,
  finite, differentiable; declared channel weights have shape ``(C,)`` and are non-negative; a
  ``fusable`` readout's ``forward`` is exactly the (optional) unit normalisation it declares;
* distances: one finite, non-negative value per sample; ``d(a, a) = 0``; ``d(a, b) = d(b, a)`` where
  ``symmetric`` says so; batch independence; gradients reach ``a`` and are finite at ``a == b``;
  ``spatial=True`` maps average to the distance where ``supports_spatial`` says so; inputs with
  different channel counts, and 1-d inputs, raise :class:`~percept.errors.InputError`.

Random weights are used for backbones (``weights=None``; the ``RandomWeightsWarning`` is silenced
inside the checks); inputs are drawn from a seeded generator, so a failure reproduces.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import torch

from percept.backbones.base import Backbone
from percept.distances.base import Distance, FusedDistance
from percept.errors import InputError, RandomWeightsWarning, RegistrationError, SpecError, first_line
from percept.ops import unit_normalize
from percept.readouts.base import Readout

ZERO_TOL = 1e-6
RTOL, ATOL = 1e-4, 1e-5


class ContractError(AssertionError):
    """A backbone, readout or distance breaks the percept contract (the message says how)."""


@dataclass
class ContractReport:
    """What a ``check_*`` function verified: the object's name and the checks that passed, in order.

    Example:
        >>> report = check_distance("l2")
        >>> report.name, "identity" in report.passed
        ('l2', True)
    """

    kind: str
    name: str
    passed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}: {len(self.passed)} checks passed ({', '.join(self.passed)})"


class _Checker:
    """Collects passed checks and raises a :class:`ContractError` naming the subject on the first failure."""

    def __init__(self, kind: str, name: str) -> None:
        self.report = ContractReport(kind, name)

    def fail(self, check: str, message: str) -> NoReturn:
        raise ContractError(f"{self.report.kind} {self.report.name!r} fails check {check!r}: {message}")

    def ok(self, check: str) -> None:
        self.report.passed.append(check)

    def expect(self, condition: bool, check: str, message: str) -> None:
        if not condition:
            self.fail(check, message)

    def close(self, check: str, actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
        # Float32 convolutions pick algorithms by batch size: tolerances follow the values' magnitude.
        scale = max(1.0, float(expected.detach().abs().max())) if expected.numel() else 1.0
        try:
            torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL * scale)
        except AssertionError as exc:
            self.fail(check, f"{what}: {first_line(exc)} ({_summary(actual)} vs {_summary(expected)})")

    def raises(self, check: str, errors: tuple[type[BaseException], ...], fn: Callable[[], Any], what: str) -> None:
        try:
            fn()
        except errors as exc:
            if not str(exc).strip():
                self.fail(check, f"{what} raised {type(exc).__name__} without a message")
            return
        except Exception as exc:  # noqa: BLE001 - reported as a contract failure
            names = " or ".join(e.__name__ for e in errors)
            self.fail(check, f"{what} should raise {names}, raised {type(exc).__name__}: {exc}")
        self.fail(check, f"{what} should raise {' or '.join(e.__name__ for e in errors)}, but returned normally")


def _summary(t: torch.Tensor) -> str:
    flat = t.detach().flatten()
    if flat.numel() == 0:
        return f"shape {tuple(t.shape)}, empty"
    return f"shape {tuple(t.shape)}, values {flat[:4].tolist()}{' ...' if flat.numel() > 4 else ''}"


def _lookup(kind: str, subject: Any) -> tuple[str, Any]:
    """``(name, factory or instance)`` for a registered name, a factory or an instance."""
    if isinstance(subject, str):
        from percept.registry import get_registry

        return subject, get_registry().get(kind, subject).factory
    return getattr(subject, "name", None) or getattr(subject, "__name__", None) or type(subject).__name__, subject


def _features(shape: Sequence[int], generator: torch.Generator, *, relu: bool = True) -> torch.Tensor:
    f = torch.randn(tuple(shape), generator=generator)
    return f.relu() if relu else f


# -- backbones -------------------------------------------------------------------------------------


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
        ['declares taps', 'returns a Backbone', 'frozen']
    """
    if batch < 2:
        raise InputError(f"check_backbone needs batch >= 2 to check batch independence, got {batch}")
    name, subject = _lookup("backbone", backbone)
    c = _Checker("backbone", name)
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
    bb: Backbone = subject

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

    c.expect(not any(p.requires_grad for p in bb.parameters()), "frozen", "some parameters still require gradients")
    bb.train()
    c.expect(not bb.training, "frozen", "the backbone left eval mode under .train()")
    c.ok("frozen")

    low, high = bb.input_range
    min_size = bb.min_size(names)
    size = max(32, min_size) if size is None else size
    c.expect(size >= min_size, "runs", f"size {size} is below the backbone's min_size {min_size} for its taps")
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, size, size, generator=g) * (high - low) + low

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

    canonical = bb.canonical_taps
    with torch.no_grad():
        for tap in canonical:
            alone = bb(x, [tap])[tap]
            c.close("taps independent of each other", alone, out[tap], f"tap {tap!r} asked alone vs with every tap")
        for i in range(batch):
            single = bb(x[i : i + 1], canonical)
            for tap in canonical:
                c.close(
                    "batch independence", single[tap], out[tap][i : i + 1], f"tap {tap!r}, sample {i} alone vs batched"
                )
    c.ok("taps independent of each other")
    c.ok("batch independence")

    shallow = min(infos, key=lambda t: t.index)
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

    xg = x[:1].clone().requires_grad_(True)
    feats = bb(xg, canonical)
    total = sum(f.float().square().mean() for f in feats.values())
    c.expect(total.requires_grad, "gradients reach the image", "the taps are detached from the input's graph")
    total.backward()
    if xg.grad is None:
        c.fail("gradients reach the image", "no gradient reached the input")
    c.expect(bool(torch.isfinite(xg.grad).all()), "gradients reach the image", "the input gradient has NaN/Inf")
    c.expect(bool(xg.grad.abs().sum() > 0), "gradients reach the image", "the input gradient is all zero")
    c.ok("gradients reach the image")

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
    return c.report


# -- readouts --------------------------------------------------------------------------------------


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
    name, subject = _lookup("readout", readout)
    c = _Checker("readout", name)
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
        w = r.channel_weight()
        if w is not None:
            c.expect(
                tuple(w.shape) == (ch,) and bool((w >= 0).all()),
                "channel weights",
                f"channel_weight() must be None or ({ch},) non-negative, got {_summary(w)}",
            )
        c.expect(
            not (w is not None and not r.fusable),
            "channel weights",
            "a readout with channel weights must be fusable (only the fused distances apply weights)",
        )
        f = _features((batch, ch, *spatial), g)
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
    c.ok("channel weights")
    c.ok("output")
    c.ok("deterministic")
    c.ok("batch independence")
    if any(r.fusable for _, r in made):
        c.ok("fusable readout is what it declares")
    c.ok("gradients")
    return c.report


# -- distances -------------------------------------------------------------------------------------


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
    name, subject = _lookup("distance", distance)
    c = _Checker("distance", name)
    d = subject if isinstance(subject, Distance) else subject()
    c.expect(isinstance(d, Distance), "returns a Distance", f"the factory returned {type(d).__name__}")
    c.ok("returns a Distance")
    n = shape[0]
    g = torch.Generator().manual_seed(seed)
    a_raw, b_raw = _features(shape, g), _features(shape, g)

    def prepare(t: torch.Tensor) -> torch.Tensor:
        return readout(t) if readout is not None else t

    a, b = prepare(a_raw), prepare(b_raw)
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

    if d.symmetric:
        with torch.no_grad():
            c.close("symmetry", d(b, a), d_ab, "d(b, a) vs d(a, b) (the distance declares symmetric = True)")
        c.ok("symmetry")

    with torch.no_grad():
        singles = torch.cat([d(a[i : i + 1], b[i : i + 1]) for i in range(n)])
    c.close("batch independence", singles, d_ab, "samples one by one vs batched")
    c.ok("batch independence")

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

    if d.supports_spatial and a.dim() == 4:
        with torch.no_grad():
            dmap = d(a, b, spatial=True)
        c.expect(
            tuple(dmap.shape) == (n, 1, *a.shape[2:]),
            "spatial map",
            f"spatial=True must give ({n}, 1, {a.shape[2]}, {a.shape[3]}), got {tuple(dmap.shape)}",
        )
        c.close("spatial map", dmap.mean(dim=(-2, -1)).flatten(), d_ab, "the spatial map's mean vs the distance")
        c.ok("spatial map")

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
    if isinstance(d, FusedDistance):
        w = torch.rand(a.shape[1], generator=g)
        with torch.no_grad():
            dw = d(a, a.clone(), weight=w)
        c.expect(bool((dw.abs() <= ZERO_TOL).all()), "identity", f"with channel weights d(a, a) = {dw.tolist()}")
    return c.report


# -- pipelines and whole plugins -------------------------------------------------------------------


def check_pipeline(pipeline: Any, *, size: int | None = None, batch: int = 2, seed: int = 0) -> ContractReport:
    """Check a whole metric (a preset or a built pipeline): shapes, ``d(x, x) = 0``, batch independence,
    gradients, and clear errors on bad images.

    Args:
        pipeline: a :class:`~percept.pipeline.Pipeline`, a preset or spec string (built with
            ``weights=None``), or a factory called as ``factory(weights=None)``.
        size: image height and width (default: the larger of 32 and the pipeline's ``min_size``).
        batch: batch size (at least 2).
        seed: seed of the test images.

    Returns:
        The :class:`ContractReport` of the checks that passed.

    Example:
        >>> check_pipeline("alexnet:conv1,conv2/unit/l2").passed[-1]  # doctest: +SKIP
        'bad input'
    """
    from percept.pipeline import Pipeline, build_pipeline

    name = pipeline if isinstance(pipeline, str) else getattr(pipeline, "spec", "") or type(pipeline).__name__
    c = _Checker("pipeline", str(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        if isinstance(pipeline, str):
            pipeline = build_pipeline(pipeline, weights=None)
        elif not isinstance(pipeline, Pipeline):
            pipeline = pipeline(weights=None)
    c.expect(isinstance(pipeline, Pipeline), "returns a Pipeline", f"got {type(pipeline).__name__}")
    c.ok("returns a Pipeline")
    low, high = pipeline.input_range
    size = max(32, pipeline.min_size) if size is None else size
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, size, size, generator=g) * (high - low) + low
    y = torch.rand(batch, 3, size, size, generator=g) * (high - low) + low
    with torch.no_grad():
        d = pipeline(x, y)
        d_xx = pipeline(x, x.clone())
        singles = torch.cat([pipeline(x[i : i + 1], y[i : i + 1]) for i in range(batch)])
    c.expect(tuple(d.shape) == (batch,), "one value per sample", f"expected ({batch},), got {tuple(d.shape)}")
    c.expect(bool(torch.isfinite(d).all() and (d >= 0).all()), "non-negative", f"got {d.tolist()}")
    c.expect(bool((d_xx.abs() <= ZERO_TOL).all()), "identity", f"d(x, x) = {d_xx.tolist()}, expected 0")
    c.close("batch independence", singles, d, "images one by one vs batched")
    for check in ("one value per sample", "non-negative", "identity", "batch independence"):
        c.ok(check)
    xg = x.clone().requires_grad_(True)
    d_grad = pipeline(xg, y)
    c.expect(d_grad.requires_grad, "gradients", "the score is detached from the image's graph")
    d_grad.sum().backward()
    c.expect(
        xg.grad is not None and bool(torch.isfinite(xg.grad).all()) and bool(xg.grad.abs().sum() > 0),
        "gradients",
        "the image gradient is missing, non-finite or all zero",
    )
    c.ok("gradients")
    c.raises("bad input", (InputError,), lambda: pipeline(x[0], y[0]), "(C, H, W) images without batch")
    c.raises("bad input", (InputError,), lambda: pipeline(x * 255, y * 255), "0..255 images")
    c.raises("bad input", (InputError,), lambda: pipeline(x, y[:1]), "batches of different sizes")
    c.ok("bad input")
    return c.report


def check_plugin(plugin: str, *, presets: bool = True) -> list[ContractReport]:
    """Run the checks over everything the plugin ``plugin`` registered.

    Args:
        plugin: the plugin's name as ``percept plugins`` shows it (an entry-point name such as
            ``"swd"``, or a built-in module such as ``"percept.distances.basic"``).
        presets: also check its presets (builds each with random backbone weights).

    Returns:
        One :class:`ContractReport` per backbone, readout, distance and preset it registered.

    Raises:
        ContractError: something it registered breaks the contract.
        SpecError: no plugin of that name was loaded (the message lists the loaded ones).
        RegistrationError: the plugin was skipped at discovery (the message says why).

    Example:
        >>> [r.name for r in check_plugin("percept.distances.basic")]
        ['mse', 'l1', 'l2', 'cosine']
    """
    from percept.registry import get_registry

    infos = {p.name: p for p in get_registry().plugins()}
    if plugin not in infos:
        from percept.errors import unknown_name

        raise SpecError(unknown_name("plugin", plugin, infos) + " Is its package installed?")
    info = infos[plugin]
    if info.error:
        raise RegistrationError(f"plugin {plugin!r} was skipped when percept loaded its plugins: {info.error}")
    checks: dict[str, Callable[[str], ContractReport]] = {
        "backbone": check_backbone,
        "readout": check_readout,
        "distance": check_distance,
    }
    if presets:
        checks["preset"] = check_pipeline
    reports: list[ContractReport] = []
    for kind, names in info.registered.items():
        if kind in checks:
            reports.extend(checks[kind](name) for name in names)
    return reports


__all__ = [
    "ContractError",
    "ContractReport",
    "check_backbone",
    "check_distance",
    "check_pipeline",
    "check_plugin",
    "check_readout",
]
