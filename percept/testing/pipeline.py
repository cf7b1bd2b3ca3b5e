"""Whole metrics and whole plugins: :func:`check_pipeline` and :func:`check_plugin`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from percept.errors import InputError, RandomWeightsWarning, RegistrationError, SpecError
from percept.testing.backbone import check_backbone
from percept.testing.checker import ZERO_TOL, Checker, ContractReport
from percept.testing.distance import check_distance
from percept.testing.readout import check_readout


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
    c = Checker("pipeline", str(name))
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
            ``"swd"``, or a built-in module such as ``"percept.builtin.distances"``).
        presets: also check its presets (builds each with random backbone weights).

    Returns:
        One :class:`ContractReport` per backbone, readout, distance and preset it registered.

    Raises:
        ContractError: something it registered breaks the contract.
        SpecError: no plugin of that name was loaded (the message lists the loaded ones).
        RegistrationError: the plugin was skipped at discovery (the message says why).

    Example:
        >>> [r.name for r in check_plugin("percept.builtin.distances")]
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
